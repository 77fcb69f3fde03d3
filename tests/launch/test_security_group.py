"""SSH to the AWS nodes from one CIDR only: launch/aws_security_group.py against a mocked EC2 (moto), and Ray's
own `ray up` bootstrap steps on cluster.yaml with that group. Nothing here needs AWS."""
import importlib.util
from pathlib import Path

import pytest
import yaml
from ray_cluster_config import validated

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster.yaml"
CIDR = "203.0.113.0/24"

spec = importlib.util.spec_from_file_location("aws_security_group", ROOT / "launch" / "aws_security_group.py")
sg_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sg_script)


def shipped() -> dict:
    return yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))


def with_cidr(cidr: str) -> dict:
    cfg = shipped()
    cfg["provider"]["security_group"]["IpPermissions"][0]["IpRanges"][0]["CidrIp"] = cidr
    return cfg


@pytest.fixture
def ec2(monkeypatch):
    """A mocked EC2 in cluster.yaml's region, with Ray's cached boto clients dropped before and after."""
    moto = pytest.importorskip("moto")
    import boto3
    from ray.autoscaler._private.aws import config as aws_config
    from ray.autoscaler._private.aws import utils as aws_utils

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")

    def clear():
        aws_utils.resource_cache.cache_clear()
        aws_utils.client_cache.cache_clear()
        aws_config._get_subnets_or_die.cache_clear()

    clear()
    with moto.mock_aws():
        yield boto3.client("ec2", region_name=shipped()["provider"]["region"])
    clear()


def world_open(ec2) -> list[str]:
    """Groups that admit anyone on the Internet to anything."""
    return [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]
            for rule in g["IpPermissions"] for r in rule.get("IpRanges", []) if r["CidrIp"] == "0.0.0.0/0"]


def test_the_shipped_cidr_is_refused_until_set(tmp_path, capsys):
    with pytest.raises(sg_script.Refused, match="REPLACE-ME"):
        sg_script.ssh_cidr(shipped())
    assert sg_script.main([str(CLUSTER)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CidrIp" in err


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "203.0.113.7/24", "10.0.0.0/33", "203.0.113.0", "::/0",
                                  "2001:db8::/32", "", "REPLACE-ME/32"])
def test_a_cidr_wider_than_asked_or_malformed_is_refused(cidr):
    with pytest.raises(sg_script.Refused):
        sg_script.ssh_cidr(with_cidr(cidr))


def test_a_host_is_a_network_of_one():
    assert sg_script.ssh_cidr(with_cidr("198.51.100.7/32")) == "198.51.100.7/32"


def test_ray_itself_would_open_ssh_to_the_world():
    """Why the group is made by the script: Ray 2.60 adds 0.0.0.0/0 to port 22 of any group it creates,
    whatever the config's IpPermissions. If this ever fails, Ray honours IpPermissions and the script may go."""
    pytest.importorskip("boto3")  # Ray's AWS provider imports it
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    rules = _create_default_inbound_rules({"sg-1"}, with_cidr(CIDR)["provider"]["security_group"]["IpPermissions"])
    assert {"CidrIp": "0.0.0.0/0"} in [r for rule in rules for r in rule.get("IpRanges", [])]


def test_the_script_makes_the_group_with_ssh_from_the_cidr_only(ec2):
    group_id = sg_script.ensure_group(ec2, "dsgkd-nodes", CIDR)
    [group] = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert sg_script.admitted(group) == {("-1", -1, -1, group_id), ("tcp", 22, 22, CIDR)}
    assert world_open(ec2) == []
    assert sg_script.ensure_group(ec2, "dsgkd-nodes", CIDR) == group_id  # a second run finds it unchanged


def test_a_group_left_open_by_an_earlier_ray_up_is_refused_not_changed(ec2):
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group_id = ec2.create_security_group(GroupName="dsgkd-nodes", VpcId=vpc, Description="old")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    with pytest.raises(sg_script.Refused, match="0.0.0.0/0"):
        sg_script.ensure_group(ec2, "dsgkd-nodes", CIDR)
    assert world_open(ec2) == ["dsgkd-nodes"]  # left for the user to fix, not silently narrowed or widened


def test_ray_up_stops_before_any_node_while_the_group_id_says_replace_me(ec2, capfd):
    from ray.autoscaler._private.aws.config import _configure_subnet

    with pytest.raises(AssertionError):  # Ray's cli_logger.doassert: the message goes to the terminal
        _configure_subnet(validated(with_cidr(CIDR)))
    assert "Failed to detect a security group" in capfd.readouterr().err
    assert ec2.describe_instances()["Reservations"] == []


def test_ray_up_uses_the_scripts_group_and_creates_none(ec2):
    """`ray up`'s AWS bootstrap steps for subnets and security groups, on cluster.yaml with the group's id."""
    from ray.autoscaler._private.aws.config import _configure_security_group, _configure_subnet

    group_id = sg_script.ensure_group(ec2, "dsgkd-nodes", CIDR)
    cfg = with_cidr(CIDR)
    text = yaml.safe_dump(cfg).replace("sg-REPLACE-ME", group_id)
    before = len(ec2.describe_security_groups()["SecurityGroups"])
    done = _configure_security_group(_configure_subnet(validated(yaml.safe_load(text))))
    assert {t["node_config"]["SecurityGroupIds"][0] for t in done["available_node_types"].values()} == {group_id}
    assert len(ec2.describe_security_groups()["SecurityGroups"]) == before
    assert world_open(ec2) == []


def test_the_group_is_named_once_for_both_node_types():
    """One id to fill in, shared by an alias: a worker type cannot be left on a group Ray would create."""
    assert "SecurityGroupIds: *nodes_sg" in CLUSTER.read_text(encoding="utf-8")
    types = shipped()["available_node_types"].values()
    assert all(t["node_config"]["SecurityGroupIds"] == ["sg-REPLACE-ME"] for t in types)
    assert shipped()["provider"]["security_group"]["GroupName"] == "dsgkd-nodes"


def test_the_script_end_to_end(ec2, tmp_path, capsys):
    """As the user runs it: the config file in, the group's id out; a second run, the same id."""
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(with_cidr(CIDR)))
    assert sg_script.main([str(path)]) == 0
    group_id = capsys.readouterr().out.strip()
    assert group_id.startswith("sg-")
    assert sg_script.main([str(path)]) == 0 and capsys.readouterr().out.strip() == group_id
    assert sg_script.main([str(tmp_path / "other.yaml")]) == 2  # a missing config: one line, no traceback
    assert capsys.readouterr().err.count("\n") == 1
