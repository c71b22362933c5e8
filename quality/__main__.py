"""``python -m quality <layer> [--schema-prefix P] [--bronze-schema S]``: run one gate; exit 1
when it fails. (The project CLI may wrap :func:`quality.gate.run_gate` the same way.)"""

from __future__ import annotations

import argparse
import logging

from quality.gate import LAYERS, run_gate
from safra.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quality", description=__doc__)
    parser.add_argument("layer", choices=list(LAYERS))
    parser.add_argument("--schema-prefix", default="", help="silver/gold schema prefix")
    parser.add_argument("--bronze-schema", default="bronze")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    result = run_gate(args.layer, get_settings(), args.schema_prefix, args.bronze_schema)
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
