"""The shared kernel: what the poller, the workers and the shell all stand on."""
