"""Environment for the local Ray runtime, set before `ray` is imported (Ray reads it at import time).

- Token auth with a per-process token: Ray 2.60 turns token auth on by default, writes the token to
  ~/.ray/auth_token (outside the state dir) and prints a notice on every start. A local runtime lives exactly
  as long as the process that starts it, so a random token in that process's environment (inherited by Ray's
  processes) is enough. A cluster's RayJob brings its own settings.
"""

import os
import secrets
import sys

from platform_core import settings

if settings.RAY_ADDRESS.get() == "local":
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    if "ray" in sys.modules:
        # Imported before this module: refresh Ray's cached config, as its own _enable_token_auth does.
        from ray._raylet import Config

        Config.initialize("")
