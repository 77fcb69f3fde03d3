"""`dsgkd export-onnx`: a trained student as an ONNX student directory for fast CPU scoring (optionally int8)."""
from __future__ import annotations

from dsgkd.paths import check_outputs
from dsgkd.storage import recover


def add_parser(sub) -> None:
    p = sub.add_parser("export-onnx", help="a trained student as ONNX (optionally int8) for fast CPU scoring",
                       description="Export a student written by `dsgkd train` to ONNX (torch.onnx) into a new "
                                   "directory with its tokenizer, config.json, dsgkd.json (temperature, threshold) "
                                   "and card; `dsgkd predict` and `dsgkd evaluate --model OUT` then score with "
                                   "onnxruntime on CPU. Needs the optional extra: pip install 'dsgkd[onnx]'. OUT "
                                   "appears only when complete.")
    p.add_argument("--model", required=True, metavar="DIR",
                   help="a student directory written by `dsgkd train` (OUT/student), or that run's OUT")
    p.add_argument("--out", required=True, metavar="DIR", help="the ONNX student directory to write (new or empty)")
    p.add_argument("--int8", action="store_true",
                   help="quantise the weights to int8 (onnxruntime dynamic quantisation): faster on CPU, check "
                        "its metrics with `dsgkd evaluate` before use")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def run(args) -> int:
    recover(args.model)
    check_outputs({"--model": args.model}, folders={"--out": args.out})
    from dsgkd.pipeline.onnx_student import export_onnx

    out = export_onnx(args.model, args.out, int8=args.int8, overwrite=args.overwrite)
    print(f"wrote {out} ({'int8' if args.int8 else 'fp32'} ONNX); score it with dsgkd predict --model {out} ...")
    return 0
