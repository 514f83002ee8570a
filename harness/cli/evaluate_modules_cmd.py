"""``synthbench evaluate-modules``: write the metric groups as local Hugging Face ``evaluate`` modules."""

from __future__ import annotations

NAME = "evaluate-modules"
HELP = "write every metric group as a local Hugging Face evaluate module (Measurement or Comparison)"
DESCRIPTION = ("Write one folder per metric group, DIR/synthbench_<group>/ (the module and its README.md card), "
               "generated from the metric registry. A group of metrics of one dataset is an evaluate.Measurement; "
               "a group that compares with real data is an evaluate.Comparison. Load one with "
               "evaluate.load('DIR/synthbench_<group>') (works offline) and call "
               "compute(data=[...], references=[...], ...); the numbers are those of 'synthbench eval'.")


def add_arguments(parser) -> None:
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to write the module folders into")
    parser.add_argument("--groups", "-g", metavar="LIST",
                        help="comma-separated metric groups (the part of a metric name before '/'); default: all")


def run(args) -> int:
    from harness.errors import UserError
    from harness.integrations.hf_evaluate import (
        all_groups,
        check_group,
        generate,
        group_kind,
        group_metrics,
        mixed,
    )

    if args.groups is None:
        groups = all_groups()
    else:
        groups = list(dict.fromkeys(check_group(g.strip()) for g in args.groups.split(",") if g.strip()))
        if not groups:
            raise UserError("--groups: empty", "name groups such as lexical,dup, or leave --groups out")
    folders = generate(args.out, groups)
    width = max(len(str(f)) for f in folders)
    for group, folder in zip(groups, folders):
        n = len(group_metrics(group))
        kind = group_kind(group) + (" (references optional)" if mixed(group) else "")
        print(f"{str(folder):{width}s}  {kind:34s}  {n} metric{'s' if n != 1 else ''}")
    group, folder = groups[0], folders[0]
    refs = ", references=real_texts" if group_kind(group) == "comparison" else ""
    print(f"\nwrote {len(folders)} module folder(s). Load one (offline) with:\n"
          f"  import evaluate\n"
          f"  module = evaluate.load({str(folder.resolve())!r})\n"
          f"  module.compute(data=texts{refs})\n"
          "Each folder's README.md lists its metrics, inputs and outputs.")
    return 0
