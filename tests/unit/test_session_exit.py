"""A task's exit status survives srun's end overtaking it."""
import asyncio

from scrun_rest.anchor.sessions import Session, TaskLink


class Conn:
    closed = False

    def send(self, message):
        pass

    def close(self):
        self.closed = True


def one_task_session():
    session = Session(asyncio.new_event_loop(), 1, "exec", 1, {})
    link = TaskLink(0, Conn(), {"node": "n1"})
    session.add_task(link)
    return session, link


def test_srun_ending_first_waits_for_the_connected_tasks_word():
    session, link = one_task_session()
    session.step_status = 1       # srun said 0, but no task had reported yet
    assert not session.all_exited()
    link.status = 5
    assert session.all_exited() and session.exit_status() == 5


def test_a_task_gone_without_a_word_ends_with_sruns_status():
    session, link = one_task_session()
    session.step_status = 1
    link.conn.close()
    assert session.all_exited() and session.exit_status() == 1


def test_a_silent_task_is_waited_for_only_a_grace_period():
    session, link = one_task_session()
    session.step_status = 137
    session.exit_grace_over = True
    assert session.all_exited() and session.exit_status() == 137


def test_tasks_that_all_reported_need_no_srun():
    session, link = one_task_session()
    link.status = 0
    assert session.all_exited() and session.exit_status() == 0
