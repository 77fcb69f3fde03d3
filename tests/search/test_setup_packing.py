"""How a search's set-up work is split into Ray tasks (`dsgkd.search.caches.pack`)."""
from dsgkd.search.caches import pack


def _teacher(job: str) -> str:
    return job.split("/")[0]


def test_one_task_per_teacher_when_the_slots_are_fewer_than_the_teachers():
    jobs = ["km/ft-latin", "km/ft-all", "km/pre-latin", "km/pre-all", "bio/ft-latin", "bio/pre-latin"]
    assert pack(jobs, _teacher, 2) == [["km/ft-latin", "km/ft-all", "km/pre-latin", "km/pre-all"],
                                       ["bio/ft-latin", "bio/pre-latin"]]
    assert pack(jobs, _teacher, 1) == pack(jobs, _teacher, 2)


def test_a_wide_cluster_splits_the_largest_task_in_order_until_every_slot_has_work():
    jobs = ["km/ft-latin", "km/ft-all", "km/pre-latin", "km/pre-all", "bio/ft-latin", "bio/pre-latin"]
    # halves keep their order: the fine-tuned caches (sorted first) stay in one task while slots allow
    assert pack(jobs, _teacher, 3) == [["km/ft-latin", "km/ft-all"], ["km/pre-latin", "km/pre-all"],
                                       ["bio/ft-latin", "bio/pre-latin"]]
    assert pack(jobs, _teacher, 4) == [["km/ft-latin"], ["km/ft-all"], ["km/pre-latin", "km/pre-all"],
                                       ["bio/ft-latin", "bio/pre-latin"]]
    assert pack(jobs, _teacher, 16) == [[job] for job in jobs]


def test_nothing_to_pack():
    assert pack([], _teacher, 4) == []
