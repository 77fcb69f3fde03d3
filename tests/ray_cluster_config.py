"""What both cluster files' tests share: the launcher's command lists, and a config exactly as `ray up`
validates it (ray.autoscaler._private.commands._bootstrap_config)."""
import copy

COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands")


def validated(raw: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)
    return cfg
