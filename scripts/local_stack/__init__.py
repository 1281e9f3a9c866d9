"""The local stack: template.yaml run offline, without Docker or an AWS account.

moto (server mode) stands in for DynamoDB, EventBridge, SQS and Secrets Manager; a small HTTP server stands in
for API Gateway and invokes the functions' real `lambda_handler`s in this process; SQS pollers stand in for the
event-source mappings; the 8x8 emulator (emulator/cc_emulator) stands in for 8x8. See docs/local-stack.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The emulator is a plain directory of the repository, not an installed package (pytest's pythonpath adds it
# too). The functions' layers are added from template.yaml when the functions are loaded.
_EMULATOR_PATH = str(REPO_ROOT / "emulator")
if _EMULATOR_PATH not in sys.path:
    sys.path.insert(0, _EMULATOR_PATH)
