"""Attachments both ways, through the stack's private S3 bucket (Chat Gateway only; GATEWAY.md §2.5, §3.3).

Customer and bot files (`uploads`, `delivery`): `POST /cases/{caseId}/attachments` records the attachment and
answers a pre-signed S3 PUT URL (content type and length are signed headers, so S3 refuses any other);
`POST /messages` with the ids checks each object with one HEAD before the message is accepted (never uploaded, too
big, not what was declared, another case's id: a 4xx now, never a failure later). Delivery streams each object
from S3 into 8x8's multipart upload and records 8x8's id on the attachment, so a retried delivery does not upload
it again.

Agent files (`agent_files`, `copier`, `download`): 8x8's pre-signed URLs expire, so the intake gives each one a
casebridge id (derived from 8x8's, so a retried webhook maps to the same one), records it `pending` and queues a
copy job; the copier streams the file into the bucket (falling back to GET …/attachments/{id}/content when the URL
no longer answers) and marks it `ready`. `GET /cases/{caseId}/attachments/{id}` then redirects to a short-lived S3
GET URL.

Keys: `cases/<caseId>/outbound/<id>` and `cases/<caseId>/inbound/<id>`; records: pk CASE#<caseId>,
sk ATTACHMENT#<id> (store/). The bucket and the shared vocabulary: `storage`; the errors: `errors`.
"""
