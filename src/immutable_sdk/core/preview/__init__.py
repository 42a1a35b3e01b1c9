"""What a rollout will do before it runs: its schedule, the specs that cannot work, a rehearsal.

* ``schedule``: each fleet's planned steps with their waits, the peak extra instances and a
  minimum duration (``plan --steps``);
* ``checks``: what makes a spec unable to work, found without running it (``rehearse``);
* ``rehearse``: the rollout run on the embedded emulator under a virtual clock, with simulated
  boot and warm-up times (``warmup``) and simulated traffic for canary analyses (``traffic``).
"""
