"""Write docs/event-schema.json from casebridge.business_api.views (the one place the business event shapes live)."""

from __future__ import annotations

import json
from pathlib import Path

from casebridge.business_api.views import event_json_schema

PATH = Path(__file__).resolve().parents[1] / "docs" / "event-schema.json"


def main() -> None:
    PATH.write_text(json.dumps(event_json_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
