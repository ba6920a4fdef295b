"""schemathesis hooks for run.sh (which sets SCHEMATHESIS_HOOKS to this module).

Two things the OpenAPI document cannot carry, each kept as narrow as it can be (the
third, real values for fields that name reference data, is in schemathesis.toml's
dictionaries):

1. The rejections no JSON Schema can prevent: a value that is well-formed but refers to
   data that does not exist, or a rule on the clock or across query parameters. A 422
   is accepted only when every field it names is one of these, with the message the
   server gives for that rule; anything else still fails the run.

2. Scope and eventual consistency, for "a resource just created is not found": a new
   referral is outside a mediator's scope until it is offered to their structure (the
   contract's 404), and the matcher learns of it from an event, moments later. Such a
   404 is accepted only when an admin's read shows the referral was not yet offered to
   the mediator's structure, or when the same read succeeds once the event is through.
"""

import json
import os
import re
import time
import urllib.error
import urllib.request

import schemathesis

# (field, message) of each rule that depends on data, the clock, or several parameters at once.
NOT_IN_THE_DOCUMENT = [
    # Reference data: the code is well-formed but no commune or postcode has it.
    (r"(person\.|address\.)?commune_code", r"unknown commune|is required to place"),
    (r"(person\.|address\.)?postcode", r"unknown postcode"),
    # The open statistics' filter: a département's code that exists, or France.
    (r"departement", r"expected a département's code"),
    (r"location", r"is required unless"),
    # A membership names a place this service knows (an organisation, a structure).
    (r"(membership\.)?(organisation_id|structure_id)", r"is not a known place"),
    # What a phone number library accepts, and OpenStreetMap's opening_hours grammar.
    (r"(person\.)?phone", r"is not a phone number"),
    (r"opening_hours", r"not a valid OpenStreetMap opening_hours value"),
    # A file format: a CSV import starts with a header line of Mednum fields; a JSON
    # export holds its records in an array.
    (r"body", r"^not a CSV file of Mednum records|^not a JSON array of records: a JSON object with no array"),
    # The clock: a contact is at most a year ahead.
    (r"at", r"is more than a year ahead|must be in the future"),
    # Across two query parameters: a period ends after it starts.
    (r"to", r"must be after from"),
    # Where a URL points (webhooks): a loopback or private address is refused unless the
    # operator allows it; a URL the pattern lets through that the URL parser refuses.
    (r"url", r"is a loopback or private address|is not a URL|has no host|must not carry credentials"),
    # Across the fields of a correction and what is stored (GDPR art. 16): the person stays
    # reachable, and the contact preference names a way that is still there.
    (r"phone|email", r"give a phone number or an e-mail address"),
    (r"contact_preference", r"but there is no (phone number|e-mail address)"),
    # What if: a period's bounds together, the places and communes that exist, and a change
    # that names a place or a new one, a capacity or a closing.
    (r"to", r"must not be before from|the period may span at most"),
    (r"(request\.)?changes\[\d+\]\.structure_id", r"unknown structure|required, or new_structure"),
    (r"(request\.)?changes\[\d+\]\.weekly_capacity", r"give weekly_capacity, or closed"),
    (r"(request\.)?changes\[\d+\]\.new_structure\.commune_code", r"unknown commune|outside the territory"),
    (r"(request\.)?changes\[\d+\]\.new_structure\.weekly_capacity", r"required"),
    (r"(request\.)?changes\[\d+\]\.new_structure\.(modes|languages)(\[\d+\])?", r"unknown value"),
    (r"(request\.)?changes\[\d+\]\.new_structure\.services(\[\d+\])?", r"unknown value|required|at least one|must not be empty"),
    (r"request\.(territory|from|to)", r"."),
]


BASE = os.environ.get("ST_BASE_URL", "")
# The structure of ST_TOKEN_MEDIATOR (seed.sh).
MEDIATOR_STRUCTURE = os.environ.get("ST_SEED_STRUCTURE", "")


def _get(path, token):
    req = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def _not_yet_visible_to_the_mediator(referral_id):
    """Whether, a moment ago, the referral was outside the mediator's scope."""
    status, r = _get(f"/api/v1/referrals/{referral_id}", os.environ["ST_TOKEN_ADMIN"])
    if status != 200:
        return False
    structure = (r.get("structure") or {}).get("id")
    offer = r.get("current_offer") or {}
    if structure == MEDIATOR_STRUCTURE:
        return False
    if r.get("status") == "offered" and offer.get("structure_id") == MEDIATOR_STRUCTURE:
        offered_at = offer.get("offered_at") or ""
        # Offered in the last few seconds: after the request that got the 404.
        recent = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5))
        return offered_at[:19] >= recent
    return True


def _found_once_settled(path, token):
    for _ in range(20):
        if _get(path, token)[0] == 200:
            return True
        time.sleep(0.25)
    return False


def _scope_or_not_yet_consistent(case):
    referral_id = (case.path_parameters or {}).get("id")
    label = case.operation.label
    if not referral_id or "/referrals/{id}" not in label:
        return False
    if re.search(r"/(accept|decline|contact|close)$", label):
        return _not_yet_visible_to_the_mediator(referral_id)
    if label.endswith("/candidates"):
        return _found_once_settled(f"/api/v1/referrals/{referral_id}/candidates", os.environ["ST_TOKEN_REFERRER"])
    return False


# What follows from one of those: an invalid phone number leaves no number to prefer.
CONSEQUENCES = [
    (r"person\.contact_preference", r"but no (e-mail address|phone number) was given", r"person\.(phone|email)"),
]


def _explained(error, errors):
    field, message = error.get("field", ""), error.get("message", "")
    if any(re.fullmatch(f, field) and re.search(m, message) for f, m in NOT_IN_THE_DOCUMENT):
        return True
    return any(
        re.fullmatch(f, field) and re.search(m, message) and any(
            re.fullmatch(cause, e.get("field", "")) and _explained(e, []) for e in errors)
        for f, m, cause in CONSEQUENCES
    )


def _accepted(failure, case, response):
    kind = type(failure).__name__
    if kind == "EnsureResourceAvailability":
        return _scope_or_not_yet_consistent(case)
    if kind != "RejectedPositiveData" or response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return False
    return bool(errors) and all(_explained(e, errors) for e in errors)


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Keeps every failure but those the document cannot prevent (see above), and notes
    each one it drops in $ST_STATE_DIR/accepted.log, so a run says what it let through."""
    if not _accepted(failure, case, response):
        return True
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    # The rule, not the generated value: the first words of each message.
    detail = "; ".join(f"{e.get('field')}: {' '.join(str(e.get('message')).split()[:5])}" for e in errors)
    with open(os.path.join(os.environ.get("ST_STATE_DIR", "."), "accepted.log"), "a", encoding="utf-8") as log:
        log.write(f"{case.operation.label}\t{type(failure).__name__}\t{response.status_code}\t{detail}\n")
    return False
