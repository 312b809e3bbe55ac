import pytest

from vpsha import etcd_leader
from vpsha.etcd_leader import leads, successor


def status(me, leader=None):
    s = {"header": {"member_id": me}}
    if leader is not None:
        s["leader"] = leader
    return s


def test_leads_only_when_etcd_names_this_member():
    assert leads(status(1, 1))
    assert not leads(status(1, 2))
    # No leader while an election is under way.
    assert not leads(status(1))


def test_the_leadership_goes_to_another_started_voter():
    members = [
        {"ID": 1, "name": "db-1", "clientURLs": ["http://10.77.0.5:2379"]},
        {"ID": 2, "name": "db-2", "clientURLs": []},
        {"ID": 3, "name": "db-3", "clientURLs": ["http://10.77.0.7:2379"], "isLearner": True},
        {"ID": 4, "name": "db-4", "clientURLs": ["http://10.77.0.8:2379"]},
    ]
    assert successor(1, members)["name"] == "db-4"
    assert successor(1, members[:3]) is None


@pytest.mark.parametrize("argv", [[], ["--patroni", "http://x"], ["--patroni", "p", "--etcd", "e", "--every", "5s"],
                                  ["--etcd", "e", "--patroni", "p", "--every", "5"]])
def test_a_bad_call_prints_the_usage_line(argv, capsys):
    assert etcd_leader.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: vps-ha-etcd-leader-away ")
