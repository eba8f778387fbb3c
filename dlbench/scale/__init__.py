"""Scale-out: the hosts of a multi-host run, from a list or a Slurm allocation."""
