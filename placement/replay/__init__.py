"""`placement replay`: a real trace through the real engine on a simulated clock, beside the baselines.

traces/     one adapter per trace format: rows -> the job specs a user would write
world.py    the simulated providers (on-prem nodes from an inventory, private pools, public offers)
runner.py   the engine on a simulated clock, event-driven
baselines.py  what a user would pick instead (sky-k8s, onprem-fifo, burst-after-wait)
figures.py  one set of figures per run, from what the simulated providers ran
report.py, plot.py, sweep.py  the table, the PNGs, the $-versus-wait front
"""
