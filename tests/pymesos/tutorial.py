"""The Portuguese Mesos tutorial's pymesos framework, run unattended against a master.

Usage: tutorial.py <master host:port> <tmp dir>

The Task/Scheduler code follows the tutorial (MesosSchedulerDriver with use_addict=True, a
client-chosen framework id as the tutorial's scheduler.py sets, offers checked and shrunk with
acceptOffer, launchTasks with refuse_seconds=1, suppressOffers once nothing is left to launch,
implicit acknowledgements). Changes for a test: the master comes from argv instead of
MESOS_MASTER_IP (no ZooKeeper), the directory goes under <tmp dir>, and the driver stops on its own
once both tasks finished.

Checks: both tasks ("echo HelloWorld" and "mkdir -p <tmp>/HelloMesos") reach TASK_FINISHED, no task
reaches another terminal state, and the driver stops cleanly (it sends TEARDOWN). Prints
`REGISTERED <framework id>`, `STATUS <task> <state>` for every update and `DONE`; exits 0 on
success, 1 with a `FAIL <why>` line otherwise. The caller checks that the directory exists.
"""

import getpass
import logging
import socket
import sys
import threading
import uuid

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
DEADLINE_SECONDS = 90


def say(*words):
    print(*words, flush=True)


class Task:
    def __init__(self, taskId, command, cpu, mem):
        self.taskId = taskId
        self.command = command
        self.cpu = cpu
        self.mem = mem

    def __getResource(self, res, name):
        for r in res:
            if r.name == name:
                return r.scalar.value
        return 0.0

    def __updateResource(self, res, name, value):
        if value <= 0:
            return
        for r in res:
            if r.name == name:
                r.scalar.value -= value

    def acceptOffer(self, offer):
        accept = True
        if self.cpu != 0 and self.cpu > self.__getResource(offer.resources, "cpus"):
            accept = False
        if self.mem != 0 and self.mem > self.__getResource(offer.resources, "mem"):
            accept = False
        if accept:
            self.__updateResource(offer.resources, "cpus", self.cpu)
            self.__updateResource(offer.resources, "mem", self.mem)
        return accept


class PythonScheduler(Scheduler):
    def __init__(self, tmp):
        self.idleTaskList = []
        self.startingTaskList = {}
        self.runningTaskList = {}
        self.finished = set()
        self.failure = None
        self.done = threading.Event()

        self.idleTaskList.append(Task("taskHelloWorld", "echo HelloWorld", .1, 100))
        self.idleTaskList.append(Task("taskDIR", "mkdir -p %s/HelloMesos" % tmp, .1, 100))
        self.all_ids = {t.taskId for t in self.idleTaskList}

    # With a client-chosen framework id pymesos reports the first SUBSCRIBED as `reregistered`.
    def registered(self, driver, frameworkId, masterInfo):
        say("REGISTERED", frameworkId.value)

    def reregistered(self, driver, masterInfo):
        say("REGISTERED", driver.framework_id)

    def resourceOffers(self, driver, offers):
        logging.info("Received resource offers: {}".format([o.id.value for o in offers]))

        if len(self.idleTaskList) == 0:
            driver.suppressOffers()
            logging.info("Idle Tasks List Empty, Suppressing Offers")
            return

        filters = {'refuse_seconds': 1}

        for offer in offers:
            taskList = []
            pendingTaskList = []
            while self.idleTaskList:
                t = self.idleTaskList.pop(0)
                if t.acceptOffer(offer):
                    task = Dict()
                    task.task_id.value = t.taskId
                    task.agent_id.value = offer.agent_id.value
                    task.name = 'task {}'.format(t.taskId)
                    task.command.value = t.command
                    task.resources = [
                        dict(name='cpus', type='SCALAR', scalar={'value': t.cpu}),
                        dict(name='mem', type='SCALAR', scalar={'value': t.mem}),
                    ]
                    self.startingTaskList[t.taskId] = t
                    taskList.append(task)
                    logging.info("Starting task: %s, in node: %s" % (t.taskId, offer.hostname))
                else:
                    pendingTaskList.append(t)

            if taskList:
                driver.launchTasks(offer.id, taskList, filters)
            self.idleTaskList = pendingTaskList

    def statusUpdate(self, driver, update):
        task_id, state = update.task_id.value, update.state
        say("STATUS", task_id, state)
        if state == "TASK_RUNNING" and task_id in self.startingTaskList:
            # The tutorial logs the container's IP; addict turns absent fields into empty Dicts.
            logging.info("Task %s running in %s" % (
                task_id, update.container_status.network_infos[0].ip_addresses[0].ip_address))
            self.runningTaskList[task_id] = self.startingTaskList.pop(task_id)
        elif state == "TASK_FINISHED":
            self.finished.add(task_id)
        elif state in TERMINAL:
            self.failure = "task %s ended %s: %s (%s)" % (
                task_id, state, update.message, update.reason)
        if self.failure or self.finished == self.all_ids:
            self.done.set()

    def error(self, driver, message):
        self.failure = "ERROR event: %s" % message
        self.done.set()


def main():
    master, tmp = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    # pymesos has its own stderr handler; without this every line of it would appear twice.
    logging.getLogger("pymesos").propagate = False

    framework = Dict()
    framework.user = getpass.getuser()
    framework.id.value = str(uuid.uuid4())
    framework.name = "HelloMesos"
    framework.hostname = socket.gethostname()
    framework.failover_timeout = 75

    scheduler = PythonScheduler(tmp)
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True)
    driver.start()
    ok = scheduler.done.wait(DEADLINE_SECONDS)
    if driver.aborted and not scheduler.failure:
        scheduler.failure = "the pymesos driver aborted (see its log above)"
    # stop() without failover sends TEARDOWN, as the tutorial's Ctrl+C handler does.
    driver.stop()
    driver.join()
    if not ok:
        scheduler.failure = "timed out after %ss; finished: %s" % (
            DEADLINE_SECONDS, sorted(scheduler.finished))
    if scheduler.failure:
        say("FAIL", scheduler.failure)
        return 1
    say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
