"""Layer maps resolve to layer pairs each KD term takes its share of; the registry is the one list of names."""
import pytest

from dsgkd.config import DistillConfig
from dsgkd.core.layer_maps import LAYER_MAPS, attention_pairs, named_layer_map, resolve_layer_map
from dsgkd.core.terms import enabled, teacher_states
from dsgkd.errors import UserError
from dsgkd.registry import Registry


def test_strategies_by_hand():
    assert resolve_layer_map("uniform", 6, 2) == [(0, 0), (3, 1), (6, 2)]
    assert resolve_layer_map("skip", 6, 2) == [(3, 1), (6, 2)]
    assert resolve_layer_map("last_k:2", 4, 2) == [(3, 1), (4, 2)]
    assert resolve_layer_map("first_last", 4, 2) == [(0, 0), (4, 2)]
    assert resolve_layer_map("0:0,4:2", 4, 2) == [(0, 0), (4, 2)]


def test_auto_is_all_on_equal_depths_and_uniform_elsewhere():
    assert named_layer_map("auto", 4, 4) == "all" and named_layer_map("auto", 6, 2) == "uniform"
    assert resolve_layer_map("auto", 4, 4) == resolve_layer_map("all", 4, 4)
    assert resolve_layer_map("auto", 6, 2) == resolve_layer_map("uniform", 6, 2) == [(0, 0), (3, 1), (6, 2)]
    for explicit in ("skip", "last_k:2", "0:0,4:2", [(0, 0), (4, 2)]):
        assert named_layer_map(explicit, 4, 2) == explicit


def test_unknown_names_list_the_registry():
    with pytest.raises(UserError, match="all, uniform, skip, last_k:K, first_last"):
        resolve_layer_map("every_other", 4, 2)
    with pytest.raises(UserError, match="takes no argument"):
        resolve_layer_map("skip:2", 4, 2)


def test_kd_terms_pair_attention_only_where_both_sides_have_one():
    pairs = resolve_layer_map("uniform", 4, 2)  # (0,0) (2,1) (4,2)
    assert attention_pairs(pairs) == [(2, 1), (4, 2)]
    settings = DistillConfig(alpha=0.6, beta=0.2, hidden_loss="cosine")
    terms = [(term.name, weight, mine) for term, weight, mine in enabled(settings, pairs)]
    assert terms == [("hidden", 0.6, [(0, 0), (2, 1), (4, 2)]), ("attention", 0.2, [(2, 1), (4, 2)])]
    assert teacher_states(enabled(settings, pairs), "hidden_states") == [0, 2, 4]
    assert teacher_states(enabled(settings, pairs), "attentions") == [2, 4]
    assert enabled(settings.control(), pairs) == []
    assert [t.name for t, _, _ in enabled(DistillConfig(alpha=0.0, beta=0.2), [(0, 0)])] == []  # no attention there


def test_a_registry_takes_a_function_by_decorator_and_spells_arguments():
    reg = Registry("demo choice")

    @reg.register("every", arg="N")
    def every(n):
        """Every N-th layer."""
        return n

    assert list(reg) == ["every"] and reg.help_text() == "every:N: Every N-th layer"
    assert "every:3" in reg and "every" not in reg and reg.lookup("every:3")[1] == "3"
    with pytest.raises(ValueError, match="unknown demo choice 'evry:3'; expected one of every:N"):
        reg.lookup("evry:3")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("every")(every)
    assert "last_k:3" in LAYER_MAPS
