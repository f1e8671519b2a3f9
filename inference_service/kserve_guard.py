"""Import kserve without letting it read the host program's command line.

kserve.model_server runs argparse.parse_known_args() on sys.argv at import time. Unknown flags are ignored,
but prefixes of its own flags are still consumed (`--model` -> --model_name, `--grpc` is ambiguous) and an
ambiguous prefix or a bad value calls sys.exit(2). Modules here import this one before any kserve module
(kept out of the package's __init__ so `platform --help` does not pay kserve's ~10 s import); the server
passes every setting explicitly, so nothing depends on that parse.
"""

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve  # noqa: F401
finally:
    sys.argv = _argv
