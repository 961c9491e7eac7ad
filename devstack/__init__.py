"""Local development stack: installs the pinned parts and runs every service as a process."""
