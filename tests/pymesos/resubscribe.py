"""A pymesos framework that leaves and comes back: re-subscription, reconciliation and kill.

Usage:
  resubscribe.py <master host:port> launch
  resubscribe.py <master host:port> resume <framework id> <task id>

`launch` subscribes a new framework (failover_timeout one hour, so the master keeps it while it
is away), launches `sleep 300` on the first offer, waits for TASK_RUNNING, prints
`FRAMEWORK <id>` and `TASK <id>`, and stops the driver with failover=True: pymesos closes the
subscription stream without TEARDOWN, as a crashed scheduler would.

`resume` is a second process that knows only those two ids: a new driver subscribes with
FrameworkInfo.id set, asks reconcileTasks for the task and expects TASK_RUNNING from the master's
reconciliation answer (reason REASON_RECONCILIATION), then kills the task, expects TASK_KILLED and
stops the driver normally (TEARDOWN).

Prints `STATUS <task> <state> <reason>` for every update; exits 0 on success, 1 with a
`FAIL <why>` line otherwise.
"""

import getpass
import logging
import sys
import threading

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler

DEADLINE_SECONDS = 60
ONE_HOUR = 3600.0


def say(*words):
    print(*words, flush=True)


def framework_info(framework_id=None):
    framework = Dict()
    framework.user = getpass.getuser()
    framework.name = "pymesos-resubscribe"
    framework.failover_timeout = ONE_HOUR
    if framework_id:
        framework.id.value = framework_id
    return framework


class Base(Scheduler):
    """Records the first failure and wakes the main thread when the phase is over."""

    def __init__(self):
        self.failure = None
        self.done = threading.Event()

    def fail(self, why):
        self.failure = self.failure or why
        self.done.set()

    def resourceOffers(self, driver, offers):
        # Nothing (more) to launch: keep the offers away for the rest of the test.
        driver.declineOffer([o.id for o in offers], {"refuse_seconds": ONE_HOUR})

    def error(self, driver, message):
        self.fail("ERROR event: %s" % message)


class Launch(Base):
    def __init__(self):
        super().__init__()
        self.task_id = "sleeper"
        self.launched = False

    def registered(self, driver, frameworkId, masterInfo):
        say("FRAMEWORK", frameworkId.value)

    def resourceOffers(self, driver, offers):
        if self.launched:
            return super().resourceOffers(driver, offers)
        offer, rest = offers[0], offers[1:]
        task = Dict()
        task.task_id.value = self.task_id
        task.agent_id.value = offer.agent_id.value
        task.name = "sleeper"
        task.command.value = "sleep 300"
        task.resources = [
            dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
            dict(name="mem", type="SCALAR", scalar={"value": 32}),
        ]
        driver.launchTasks(offer.id, [task])
        self.launched = True
        if rest:
            super().resourceOffers(driver, rest)

    def statusUpdate(self, driver, update):
        say("STATUS", update.task_id.value, update.state, update.reason or "-")
        if update.state == "TASK_RUNNING":
            say("TASK", update.task_id.value)
            self.done.set()
        elif update.state not in ("TASK_STAGING", "TASK_STARTING"):
            self.fail("task ended %s: %s" % (update.state, update.message))


class Resume(Base):
    def __init__(self, task_id):
        super().__init__()
        self.task_id = task_id
        self.reconciled = False

    # The id was set before subscribing, so pymesos calls this, not `registered`.
    def reregistered(self, driver, masterInfo):
        say("RESUBSCRIBED", driver.framework_id)
        driver.reconcileTasks([{"task_id": {"value": self.task_id}}])

    def statusUpdate(self, driver, update):
        say("STATUS", update.task_id.value, update.state, update.reason or "-")
        if update.task_id.value != self.task_id:
            return self.fail("update for a task never launched: %s" % update.task_id.value)
        if not self.reconciled:
            # Agents may re-send unacknowledged updates after a re-subscription; only the
            # master's answer to the RECONCILE call counts here.
            if update.reason != "REASON_RECONCILIATION":
                return
            if update.state != "TASK_RUNNING":
                return self.fail("reconciliation answered %s" % update.state)
            self.reconciled = True
            driver.killTask({"value": self.task_id})
        elif update.state == "TASK_KILLED":
            self.done.set()
        elif update.state not in ("TASK_RUNNING", "TASK_KILLING"):
            self.fail("kill ended the task %s: %s" % (update.state, update.message))


def main():
    master, phase = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # pymesos has its own stderr handler; without this every line of it would appear twice.
    logging.getLogger("pymesos").propagate = False
    if phase == "launch":
        scheduler, framework = Launch(), framework_info()
    elif phase == "resume":
        scheduler, framework = Resume(sys.argv[4]), framework_info(sys.argv[3])
    else:
        say("FAIL unknown phase %s" % phase)
        return 2

    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True)
    driver.start()
    if not scheduler.done.wait(DEADLINE_SECONDS):
        scheduler.fail("timed out after %ss in phase %s" % (DEADLINE_SECONDS, phase))
    if driver.aborted:
        scheduler.fail("the pymesos driver aborted (see its log above)")
    # failover=True closes the stream without TEARDOWN, so the master keeps the framework.
    driver.stop(failover=(phase == "launch"))
    driver.join()
    if scheduler.failure:
        say("FAIL", scheduler.failure)
        return 1
    say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
