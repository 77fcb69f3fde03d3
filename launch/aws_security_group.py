"""Create the dsgkd nodes' AWS security group from cluster.yaml's `provider.security_group`, before `ray up`.

Why a script: Ray 2.60 opens SSH to 0.0.0.0/0 on every security group it creates
(ray.autoscaler._private.aws.config._create_default_ssh_inbound_rules), whatever `IpPermissions` the config
adds, and leaves a group that already has rules as it is. So the group is made here, with SSH from the CIDR the
user set and all traffic between the nodes and nothing else, and both node types name it in `SecurityGroupIds`
(Ray then creates none). Run from the repository root, with the AWS credentials `ray up` uses:

    python launch/aws_security_group.py [cluster.yaml]

It prints the group's id (put it in place of sg-REPLACE-ME). A second run finds the group and checks its rules;
a group that admits anything else (e.g. SSH from the world, left by an earlier `ray up`) is refused, not changed.
Errors: one line on stderr, exit 2."""
import ipaddress
import sys
from pathlib import Path

import yaml

PLACEHOLDER = "REPLACE-ME"


class Refused(Exception):
    """A setting or an existing group that would let the cluster start with SSH open wider than asked."""


def ssh_cidr(cfg: dict) -> str:
    """The one CIDR `provider.security_group` admits to port 22, checked: a network, not the whole Internet."""
    rules = cfg.get("provider", {}).get("security_group", {}).get("IpPermissions") or []
    ssh = [r for r in rules if r.get("IpProtocol") == "tcp" and r.get("FromPort") == 22 and r.get("ToPort") == 22]
    ranges = [ip.get("CidrIp", "") for r in ssh for ip in r.get("IpRanges", [])]
    if len(rules) != 1 or len(ranges) != 1:
        raise Refused("provider.security_group.IpPermissions must be the one SSH rule (tcp 22) with one CidrIp")
    cidr = str(ranges[0])
    if PLACEHOLDER in cidr:
        raise Refused("set provider.security_group's CidrIp (the addresses allowed to SSH to the nodes, "
                      "e.g. your office or VPN range) in place of REPLACE-ME")
    try:
        if "/" not in cidr:  # AWS wants the prefix length written out; a bare address is a slip, not a /32
            raise ValueError(cidr)
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise Refused("CidrIp is not an IPv4 network in CIDR notation (e.g. 203.0.113.0/24)") from None
    if network.version != 4:
        raise Refused(f"CidrIp {cidr} is IPv6; the nodes' SSH rule takes an IPv4 range")
    if network.prefixlen == 0:
        raise Refused(f"CidrIp {cidr} admits the whole Internet to SSH; give your own address range")
    return str(network)


def wanted_rules(group_id: str, cidr: str) -> list[dict]:
    return [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": cidr, "Description": "ssh to the dsgkd nodes"}]}]


def admitted(group: dict) -> set[tuple]:
    """What a group lets in, as (protocol, from port, to port, source) tuples, one per source."""
    out = set()
    for rule in group.get("IpPermissions", []):
        ports = (rule.get("IpProtocol"), rule.get("FromPort", -1), rule.get("ToPort", -1))
        out |= {(*ports, r["CidrIp"]) for r in rule.get("IpRanges", [])}
        out |= {(*ports, r["CidrIpv6"]) for r in rule.get("Ipv6Ranges", [])}
        out |= {(*ports, p["GroupId"]) for p in rule.get("UserIdGroupPairs", [])}
        out |= {(*ports, p["PrefixListId"]) for p in rule.get("PrefixListIds", [])}
    return out


def ensure_group(ec2, name: str, cidr: str) -> str:
    """The id of the group `name` in the region's default VPC, created with exactly `wanted_rules`."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise Refused("the region has no default VPC: create the group in your VPC by hand (launch/README.md)")
    vpc = vpcs[0]["VpcId"]
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                 {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if found:
        group_id = found[0]["GroupId"]
        extra = admitted(found[0]) - {("-1", -1, -1, group_id), ("tcp", 22, 22, cidr)}
        if extra:
            shown = ", ".join(f"{proto} {lo}-{hi} from {src}" for proto, lo, hi, src in sorted(extra, key=str))
            raise Refused(f"security group {name} ({group_id}) also admits {shown}: remove those rules "
                          "(or delete the group) and run this again")
        has = admitted(found[0])
        missing = [r for r in wanted_rules(group_id, cidr) if not admitted({"IpPermissions": [r]}) <= has]
        if missing:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=missing)
        return group_id
    group_id = ec2.create_security_group(
        GroupName=name, VpcId=vpc, Description="dsgkd Ray nodes: SSH from one range, all traffic between nodes",
    )["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=wanted_rules(group_id, cidr))
    return group_id


def settings(path: Path) -> tuple[str, str, str]:
    """(region, group name, SSH CIDR) from the cluster config at `path`."""
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    provider = cfg.get("provider") if isinstance(cfg, dict) else None
    if not isinstance(provider, dict) or not isinstance(provider.get("security_group"), dict):
        raise Refused("no provider.security_group: not cluster.yaml, or an older one without the SSH CIDR")
    if not provider.get("region"):
        raise Refused("no provider.region")
    name = provider["security_group"].get("GroupName") or f"{cfg.get('cluster_name', 'dsgkd')}-nodes"
    return str(provider["region"]), str(name), ssh_cidr(cfg)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "cluster.yaml")
    try:
        region, name, cidr = settings(path)
    except (Refused, OSError, yaml.YAMLError) as exc:
        print(f"aws_security_group.py: {path}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    try:  # only once the settings are good: a refusal above needs no AWS SDK
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        print("aws_security_group.py: needs boto3, as `ray up` on AWS does (pip install -c constraints.txt boto3)",
              file=sys.stderr)
        return 2

    try:
        group_id = ensure_group(boto3.client("ec2", region_name=region), name, cidr)
    except Refused as exc:
        print(f"aws_security_group.py: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:  # credentials, permissions, region
        print(f"aws_security_group.py: AWS refused: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(group_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
