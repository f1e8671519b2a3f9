"""The root `platform` CLI: mounts each package's sub-app and shows a PlatformError as one line."""
