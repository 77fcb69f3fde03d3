"""`dsgkd table`: the paper's comparison on the embedded benchmark."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from dsgkd.cli.args import parse_seeds
from dsgkd.constants import SEARCH_SPACES
from dsgkd.data.profiles import PROFILES
from dsgkd.data.world import DEFAULT, get_world
from dsgkd.errors import UserError
from dsgkd.paths import check_outputs, run_entries

MIN_NOTES = 50


def add_parser(sub) -> None:
    p = sub.add_parser("table", help="the paper's comparison on the embedded benchmark (docs/results.md)",
                       description="Searched DSG-KD, its wrong-knowledge control (the teacher's twin pretrained "
                                   "on permuted severities, own search), the two configs with their teachers swapped, "
                                   "its knowledge-free control (random-init teacher, own search), the KD-off control "
                                   "(same steps and notes), the paper's settings, the teachers alone and an n-gram "
                                   "reference for each stand-in pair, over several seeds; the primary comparison "
                                   "(the teacher vs its wrong-knowledge twin within both searched configs, test "
                                   "AUROC) by an exact sign-flip test over the training seeds, Holm-corrected, with "
                                   "its detectable difference declared before the run. Re-running with the same "
                                   "--out resumes.")
    p.add_argument("--out", type=Path, default=Path("runs/paper_table"))
    p.add_argument("--world", help="the generator's world to draw the notes from (default: the default world)")
    p.add_argument("--profile",
                   help="control world, or several comma-separated (each table in OUT/<profile>, --results one "
                        "document for them all, e.g. --profile positive,negative,default): default; positive (term severity carries the label: knowledge must help; "
                        "its suggested transfer set is --transfer 10000); negative (the domain corpus states "
                        "permuted severities: the teacher's knowledge is wrong, distilling it must not help; negative2: "
                        "another permutation)")
    p.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9,10,11",
                   help="training seeds (default 12: the fewest at which the primary comparison, which needs both "
                        "searched configs to show the effect, detects 0.02 with 80%% power at the planned SD; "
                        "fewer are run, with the power they have, stated)")
    p.add_argument("--trials", type=int, help="trials per search (default: the space's budget)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="runs in parallel")
    p.add_argument("--pairs", help="comma-separated pairs, TEACHER:STUDENT or TEACHER>STUDENT "
                                   "or `all` (default: the published table's two xlmr-tiny pairs, whose KD-off "
                                   "control reaches the n-gram reference; `all` adds the two kobert-tiny pairs)")
    p.add_argument("--train", type=int, default=2000, help="labelled training notes (at 600 no recipe tried "
                                                             "brings the KD-off student near the n-gram reference)")
    p.add_argument("--val", type=int, default=400)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--transfer", type=int, default=500)
    p.add_argument("--curve", help="learning curve: labelled training sizes at which to re-run the primary "
                                   "comparison, e.g. 200,600,2000")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the frozen teachers live in every row instead of caching their signal per cache group "
                        "under OUT/<pair>/teacher_cache (the searches keep theirs)")
    p.add_argument("--reuse", type=Path, metavar="OTHER",
                   help="an earlier table (one per --profile: OTHER/<profile>) whose runs and searches this one "
                        "would repeat: those are copied and scored on this table's test split instead of trained "
                        "again (a run whose config is this one's but for the test split, its training notes the "
                        "same bytes; a search with the same space and budget)")
    p.add_argument("--results", type=Path, help="also write the markdown here (e.g. docs/results.md)")
    p.add_argument("--render-only", action="store_true",
                   help="re-write the markdown from OUT/results.json without running anything")
    p.add_argument("--space", type=Path, default=SEARCH_SPACES / "paper_table.yaml", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def invocation() -> str:
    """The command line as typed: `dsgkd table ...` or `python benchmarks/paper_table.py ...`."""
    head = ["dsgkd"] if Path(sys.argv[0]).name == "dsgkd" else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def parse_pairs(text: str | None) -> list[str] | str | None:
    """`kmbert-tiny:xlmr-tiny,biobert-tiny>kobert-tiny` → the space's pair keys (`TEACHER>STUDENT`); `all`
    stays "all" (every pair of the space); nothing → None (the published table's pairs)."""
    if not text:
        return None
    if text.strip() == "all":
        return "all"
    keys = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        teacher, sep, student = item.partition(">") if ">" in item else item.partition(":")
        if not (sep and teacher.strip() and student.strip()):
            raise UserError(f"--pairs {item!r}: expected TEACHER:STUDENT, e.g. kmbert-tiny:xlmr-tiny")
        keys.append(f"{teacher.strip()}>{student.strip()}")
    return keys


def parse_curve(text: str | None) -> list[int] | None:
    if not text:
        return None
    sizes = parse_seeds(text, "--curve")
    if any(n < MIN_NOTES for n in sizes) or len(set(sizes)) != len(sizes):
        raise UserError(f"--curve {text!r}: distinct training sizes of at least {MIN_NOTES} notes each")
    return sizes


def parse_profiles(text: str | None) -> list[str | None]:
    """`positive,negative` → ["positive", "negative"]; nothing → [None] (the world as named)."""
    if not text:
        return [None]
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in PROFILES]
    if bad or not names or len(set(names)) != len(names):
        raise UserError(f"--profile {text!r}: distinct names among {', '.join(PROFILES)}")
    return names


def run(args) -> int:
    profiles = parse_profiles(args.profile)
    # what a table resumes from and renders (results.json, its protocol, its data) is never --results
    check_outputs({"--space": args.space, "--out": run_entries(args.out, except_="results.md")},
                  files={"--results": args.results})
    from dsgkd.experiments.table_render import write_report, write_worlds_report

    outs = {p: args.out / p for p in profiles} if len(profiles) > 1 else {profiles[0]: args.out}
    if not args.render_only:
        for profile, out in outs.items():
            reuse = None if args.reuse is None else args.reuse / profile if len(outs) > 1 else args.reuse
            run_one(args, out, profile, results=None if len(outs) > 1 else args.results, reuse=reuse)
    if len(outs) == 1:
        if args.render_only:
            print(write_report(_ran(args.out).resolve(), args.results))
        return 0
    print(write_worlds_report({get_world(args.world or DEFAULT, p).name: _ran(out).resolve()
                               for p, out in outs.items()}, args.results))
    return 0


def _ran(out: Path) -> Path:
    if not (out / "results.json").is_file():
        raise UserError(f"{out}: no results.json to render (run the table first)")
    return out


def run_one(args, out: Path, profile: str | None, results: Path | None, reuse: Path | None = None) -> None:
    from dsgkd.experiments.paper_table import run_table

    seeds = parse_seeds(args.seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {args.seeds!r}: the table needs at least two distinct seeds")
    sizes = {"train": args.train, "val": args.val, "test": args.test, "transfer": args.transfer}
    for name, n in sizes.items():
        if n < MIN_NOTES:
            raise UserError(f"--{name} {n}: needs at least {MIN_NOTES} notes")
    world = get_world(args.world or DEFAULT, profile).name if (args.world or profile) else None
    run_table(out, seeds=seeds, trials=args.trials, workers=args.workers, sizes=sizes,
              pairs=parse_pairs(args.pairs), results_path=results, space_path=args.space, world=world,
              curve=parse_curve(args.curve), command=invocation(), teacher_cache=not args.no_teacher_cache,
              reuse=reuse)
