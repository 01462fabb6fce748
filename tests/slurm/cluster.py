"""A real single-node SLURM cluster in a temp dir, for the SLURM tests: munged, slurmctld and slurmd on
127.0.0.1, started as root and stopped by PID. Needs Debian's slurmctld, slurmd, slurm-client and munge
(``.ci/run`` installs them); ``missing()`` says why it cannot start here.

Nothing outside the dir is touched but munged's socket, which gets its own world-searchable temp dir
(munged refuses a socket under a 0700 directory such as pytest's tmp_path). Ports are picked free, so
two clusters (two test sessions) can run side by side.

There is no accounting daemon, so the real ``sacct`` answers nothing. submitit polls job states with
``sacct -o JobID,State,NodeList --parsable2 -j IDS``; the cluster's ``bin/sacct`` answers exactly that
query from the controller (``squeue -t all``, which keeps finished jobs for ``MinJobAge``), so a
cancelled or failed job is seen as such. Clients find the cluster through ``env()`` (SLURM_CONF, and
``bin`` first on PATH).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
SBIN = "/usr/sbin:/sbin"

SACCT = """#!/usr/bin/env python3
# submitit's status query, answered from squeue (this cluster keeps no accounting database).
import subprocess, sys
args = sys.argv[1:]
ids = args[args.index("-j") + 1] if "-j" in args else ""
out = subprocess.run(["squeue", "-h", "-t", "all", "-j", ids, "-o", "%i|%T|%N"], capture_output=True, text=True)
print("JobID|State|NodeList")
print(out.stdout, end="")
"""


def missing() -> str | None:
    """Why this machine cannot run the cluster (not root, a program missing); None when it can."""
    if os.geteuid() != 0:
        return "the SLURM tests start slurmctld, slurmd and munged as root; this user is not root"
    path = f"{os.environ.get('PATH', '')}:{SBIN}"
    absent = [p for p in DAEMONS + CLIENTS if shutil.which(p, path=path) is None]
    if absent:
        return f"{', '.join(absent)} not installed (apt-get install slurmctld slurmd slurm-client munge)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One node (this machine, as slurmd -C sees it), one partition ``debug``, state under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "etc" / "slurm.conf"
        self.sockdir: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.pids: dict[str, Path] = {"slurmd": root / "run" / "slurmd.pid",
                                      "slurmctld": root / "run" / "slurmctld.pid",
                                      "munged": root / "munge" / "munged.pid"}

    def env(self) -> dict[str, str]:
        """os.environ with this cluster's SLURM_CONF and the sacct shim first on PATH."""
        return {**os.environ, "SLURM_CONF": str(self.conf),
                "PATH": f"{self.root / 'bin'}:{os.environ.get('PATH', '')}:{SBIN}"}

    def run(self, *cmd: str, check: bool = True) -> str:
        done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, timeout_s: float = 30.0) -> None:
        for d in ("etc", "state", "spool", "log", "run", "munge", "bin"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        (self.root / "spool" / f"slurmd-{host}").mkdir(exist_ok=True)
        sacct = self.root / "bin" / "sacct"
        sacct.write_text(SACCT)
        sacct.chmod(0o755)
        self.sockdir = Path(tempfile.mkdtemp(prefix="strf-slurm-munge-"))
        self.sockdir.chmod(0o755)
        sock = self.sockdir / "munge.sock"
        key = self.root / "munge" / "munge.key"
        env = self.env()
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], env=env, check=True, capture_output=True)
        key.chmod(0o400)
        self._spawn("munged", ["munged", "--foreground", f"--key-file={key}", f"--socket={sock}",
                               f"--pid-file={self.pids['munged']}", f"--log-file={self.root / 'munge' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        self._wait(lambda: sock.exists(), timeout_s, "munged did not open its socket")
        node = subprocess.run(["slurmd", "-C"], env=env, capture_output=True, text=True, check=True).stdout.split("\n")[0]
        self.conf.write_text(self._conf(host, node, sock))
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).strip() == "idle", timeout_s,
                   "the node did not become idle")

    def _conf(self, host: str, node: str, sock: Path) -> str:
        r = self.root
        return f"""ClusterName=strftest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}/slurmd-%n
SlurmctldPidFile={self.pids['slurmctld']}
SlurmdPidFile={self.pids['slurmd']}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=5
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=86400
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "w") as log:
            self.procs[name] = subprocess.Popen(cmd, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in sorted((self.root / "log").glob("*"))
                                 if p.is_file())
                self.stop()
                raise RuntimeError(f"SLURM test cluster: {what} within {timeout_s:g} s\n{logs}")
            time.sleep(0.1)

    def jobs(self) -> list[str]:
        """Ids of the jobs still pending or running."""
        return self.run("squeue", "-h", "-o", "%i", check=False).split()

    def stop(self, grace_s: float = 15.0) -> None:
        """Cancel every job, wait for the queue to empty, then stop slurmd, slurmctld and munged by PID."""
        if self.jobs():
            self.run("scancel", "--full", *self.jobs(), check=False)
            deadline = time.monotonic() + 20
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):  # the daemons run in the foreground: their pids are ours
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.pids[name].unlink(missing_ok=True)
        if self.sockdir is not None:
            shutil.rmtree(self.sockdir, ignore_errors=True)
