import pytest

from vpsha import etcd_ready
from vpsha.etcd_ready import cluster_version, wait


def answers(*seq):
    it = iter(seq)
    last = [None]

    def read(_url):
        last[0] = next(it, last[0])
        return last[0]
    return read


def test_the_cluster_version_is_read_and_an_undecided_one_is_none():
    assert cluster_version({"etcdserver": "3.5.16", "etcdcluster": "3.5.0"}) == (3, 5, 0)
    assert cluster_version({"etcdserver": "3.5.16", "etcdcluster": "not_decided"}) is None
    assert cluster_version({"etcdserver": "3.5.16"}) is None


def test_it_waits_through_no_answer_and_a_forming_cluster_then_returns_at_once(clock):
    read = answers(None, {"etcdserver": "3.5.16", "etcdcluster": "not_decided"},
                   {"etcdserver": "3.5.16", "etcdcluster": "3.0.0"}, {"etcdserver": "3.5.16", "etcdcluster": "3.5.0"})
    assert wait("http://127.0.0.1:2379", 30, read=read, clock=clock, sleep=clock.sleep)
    assert clock.now == 3


def test_a_cluster_version_older_than_3_4_is_waited_for_until_the_bound(capsys, clock):
    forming = answers({"etcdserver": "3.5.16", "etcdcluster": "3.0.0"})
    assert not wait("http://e", 5, read=forming, clock=clock, sleep=clock.sleep)
    assert clock.now == 5
    # Said once, not once a second.
    assert capsys.readouterr().out.count("cluster version 3.0.0") == 1


def test_an_etcd_that_never_answers_fails_after_the_bound(clock):
    assert not wait("http://e", 3, read=answers(None), clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize("argv", [[], ["--etcd", "http://e"], ["--etcd", "e", "--wait", "5s"],
                                  ["--wait", "5", "--etcd", "e"]])
def test_a_bad_call_prints_the_usage_line(argv, capsys):
    assert etcd_ready.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-etcd-ready ")
