"""The organism's probes of unseen scenarios: what they ask and how a rename rewrites it."""

from agents.organism.probes import RENAMES, probe_sets, renamed, renamed_requests
from envs.base import Choices


def test_probe_sets_are_first_rounds_of_both_splits_and_atp_where_its_files_are(tmp_path):
    sets = probe_sets(scenarios=3, templates=1, payoffs=[[2.0, 2.1]], atp=tmp_path)
    assert set(sets) == {
        f"{p}/{s}" for p in ("roleplay", "threshold") for s in ("train", "held_out")
    }
    for requests in sets.values():
        assert requests and all(len(r.messages) == 2 for r in requests)  # system + question
    assert len(sets["threshold/train"]) == 4  # one template at each of 4 thresholds


def test_a_rename_rewrites_every_mention_and_swaps_the_format_line_order():
    request = probe_sets(scenarios=1, templates=1, payoffs=[[2.0, 2.1]], atp=None)[
        "roleplay/held_out"
    ][0]
    old = request.choices
    new = renamed(request, ("Path North", "Path South"), swap=True)
    text = "\n".join(m["content"] for m in new.messages)
    assert new.choices == Choices("Path North", "Path South", not old.comply_first)
    assert f'"{old.comply}"' not in text and f'"{old.violate}"' not in text
    assert text.endswith(new.choices.format_instruction())
    first, _ = new.choices.ordered
    assert first == ("Path South" if old.comply_first else "Path North")


def test_renamed_requests_cycle_the_names_and_swap_every_other_one():
    requests = probe_sets(scenarios=4, templates=1, payoffs=[[2.0, 2.1]])["roleplay/train"][:4]
    out = renamed_requests(requests)
    assert [r.choices.comply for r in out] == [n[0] for n in RENAMES[: len(out)]]
    swapped = [
        a.choices.comply_first != b.choices.comply_first for a, b in zip(requests, out, strict=True)
    ]
    assert swapped == [False, True, False, True][: len(out)]
