"""Serving: the XGBoost predictor (kserve.Model), the loopback model server, the v2 client.

kserve.model_server runs argparse.parse_known_args() on sys.argv at import time. Unknown flags are ignored,
but prefixes of its own flags are still consumed (`--model` -> --model_name) and an ambiguous prefix or a bad
value calls sys.exit(2). Every module here imports kserve after this package, so hiding the host CLI's argv
once, here, covers them all; the server passes every setting explicitly, so nothing depends on that parse.
"""

import sys

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve  # noqa: F401
finally:
    sys.argv = _argv
