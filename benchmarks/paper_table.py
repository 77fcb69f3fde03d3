"""The DSG-KD paper's table on the embedded benchmark; writes docs/results.md. Same as `dsgkd table`.

    python benchmarks/paper_table.py --out runs/paper_table --results docs/results.md

Prints the markdown table; the machine-readable figures are in OUT/results.json.
"""
import sys

from dsgkd.cli import main

if __name__ == "__main__":
    sys.exit(main(["table", *sys.argv[1:]]))
