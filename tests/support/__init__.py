"""Plumbing shared by every test tier and the bench: one of each, so the tiers never import each other.

- `paths`: where the repository's pieces are.
- `lambdas`: load functions/<name>/app.py as a module; a Lambda context.
- `events`: API Gateway REST proxy and SQS events, as the services build them.
- `signing`: the webhook signer, written from CONTRACT.md (not from the code under test), and the header list.
- `aws`: the AWS resources of template.yaml, created in moto from the template itself.
- `connector`: forgetting casebridge's per-container caches; a case already mapped to a conversation.

Nothing here imports casebridge at import time (the bench sets the environment powertools reads first).
"""
