"""`python -m scripts.bench`: what the connector costs per message and per event (docs/performance.md).

Importing the package sets up what every module of it needs before casebridge is imported: the layer on
sys.path and a Lambda-like environment (powertools reads it at import time). See harness.
"""

from scripts.bench import harness as harness
