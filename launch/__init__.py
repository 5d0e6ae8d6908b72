"""coir.launch: every stage as SLURM jobs (or local processes) through submitit.

cli.py             `coir launch train|eval|data|selftest|status|logs|cancel`
api.py             submit_train / submit_eval / submit_lasco / submit_command / submit_selftest
cluster_config.py  ClusterConfig, the schema of configs/cluster/*.yaml
executor.py        submitit executors, sbatch parameters (one task per GPU, USR2 signal, kill-on-bad-exit)
task.py            LaunchedTask: the submitted callable; preemption, checkpoint, requeue
rank_logs.py       every line of a task's stdout/stderr prefixed with its rank, host and SLURM ids
distributed.py     MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK of each task
jobs.py            what the jobs run (training, LaSCo ranges + merge, evaluation cells + table)
runs.py            RUN_DIR/jobs.json, job states, logs, cancel
testbed/           a temporary one-node SLURM for the tests (install_slurm.sh installs it)
demo.py            `coir demo`
"""
