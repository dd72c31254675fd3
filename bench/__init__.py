"""pgworker benchmarks (`make bench`): numbers measured on a real server, printed as jobs/s."""
