#!/usr/bin/env python3
"""Seeds a fresh server for the schemathesis run and prints the tokens and ids as
`export` lines (standard library only):

    seed.py BASE_URL AIGUILLAGE_BINARY [MEDNUM_FILE]      (in the server's environment)

It makes one referrer organisation in Charente, three structures (one in Angoulême
offering everything with room to spare, so referrals from around there are offered to
it; one in Cognac; one not accepting) and a few referrals in each state the
transitions start from: offered, accepted, in progress, waitlisted, cancelled. With a
Mednum file, it imports that directory first."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

BASE, BIN = sys.argv[1].rstrip("/"), sys.argv[2]
EVERY_NEED = [
    "aide_demarches_administratives", "maitrise_outils_numeriques", "insertion_professionnelle",
    "utilisation_securisee", "parentalite_education", "loisirs_creations", "comprehension_monde_numerique",
    "acces_internet_materiel", "acquisition_materiel_solidaire",
]


def http(method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def must(method, path, token, body=None, ok=(200, 201)):
    status, value = http(method, path, token, body)
    if status not in ok:
        sys.exit(f"seed: {method} {path} -> {status} {value}")
    return value


def token(*args):
    out = subprocess.run([BIN, "token", "issue", *args], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def structure(name, commune_code, postcode, lat, lon, services, capacity, accepting=True):
    return {
        "name": name, "services": services, "modes": ["individual", "workshop", "autonomous", "remote"],
        "languages": ["fr", "en", "ar"], "other_languages": True,
        "accessibility": ["deaf", "visual", "motor", "mental", "illiteracy"],
        "address": {"street": "1 rue de la Gare", "postcode": postcode, "commune_code": commune_code},
        "location": {"lat": lat, "lon": lon}, "opening_hours": "Mo-Fr 09:00-12:00,14:00-17:00",
        "weekly_capacity": capacity, "accepting": accepting,
        "contact": {"phone": "+33545000000", "email": "lieu@example.org"},
    }


def referral(note):
    return {
        "person": {"first_name": "Camille", "last_name": "Essai", "phone": "06 12 34 56 78", "email": None,
                   "contact_preference": "phone", "commune_code": "16015", "languages": ["fr"], "accessibility": []},
        "needs": ["aide_demarches_administratives"], "modes": ["in_person"], "urgency": "normal", "note": note,
        "consent": {"obtained": True, "method": "oral"},
    }


def until(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"seed: timed out waiting for {what}")


def main():
    admin = token("--role", "admin")
    if len(sys.argv) > 3:
        # A real directory too (the demo's), for responses built from real-world records.
        with open(sys.argv[3], "rb") as f:
            req = urllib.request.Request(BASE + "/api/v1/structures/import", data=f.read(), method="POST",
                                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=120).read()
    org = must("POST", "/api/v1/organisations", admin,
               {"name": "CCAS d'Angoulême", "kind": "social_service", "territory": "16"})["id"]
    referrer = token("--role", "referrer", "--organisation", org)
    mediator = token("--role", "mediator", "--structure", "ci-angouleme")
    coordinator = token("--role", "coordinator", "--territory", "16")
    must("PUT", "/api/v1/structures/ci-angouleme", admin,
         structure("Médiathèque d'Angoulême", "16015", "16000", 45.6484, 0.1562, EVERY_NEED, 10000))
    must("PUT", "/api/v1/structures/ci-cognac", admin,
         structure("France services Cognac", "16102", "16100", 45.6958, -0.3287, EVERY_NEED[:3], 5))
    must("PUT", "/api/v1/structures/ci-closed", admin,
         structure("Lieu fermé", "16206", "16230", 45.8769, 0.1778, EVERY_NEED, 5, accepting=False))

    def offered(rid):
        return until(f"{rid} offered", lambda: (lambda r: r if r.get("status") == "offered" else None)(
            http("GET", f"/api/v1/referrals/{rid}", referrer)[1]))

    ids = {}
    for state in ["offered", "accepted", "in_progress", "cancelled"]:
        rid = must("POST", "/api/v1/referrals", referrer, referral(f"Seeded: {state}."))["id"]
        # The matcher learns about the structures from events: the first offer may take a moment.
        offered(rid)
        if state in ("accepted", "in_progress"):
            must("POST", f"/api/v1/referrals/{rid}/accept", mediator, {"mediator_name": "Dominique"})
        if state == "in_progress":
            must("POST", f"/api/v1/referrals/{rid}/contact", mediator, {"kind": "appointment"})
        if state == "cancelled":
            must("POST", f"/api/v1/referrals/{rid}/cancel", referrer, {"reason": "Plus nécessaire."})
        ids[state] = rid
    far = dict(referral("Seeded: waitlisted."), needs=["loisirs_creations"], max_distance_km=0.5)
    far["person"] = dict(far["person"], commune_code="16070")
    rid = must("POST", "/api/v1/referrals", referrer, far)["id"]
    until(f"{rid} waitlisted", lambda: http("GET", f"/api/v1/referrals/{rid}", referrer)[1].get("status") == "waitlisted")
    ids["waitlisted"] = rid

    exports = {
        "ST_TOKEN_ADMIN": admin, "ST_TOKEN_REFERRER": referrer, "ST_TOKEN_MEDIATOR": mediator,
        "ST_TOKEN_COORDINATOR": coordinator, "ST_ORGANISATION_ID": org,
        "ST_REFERRAL_IDS": " ".join(ids.values()), "ST_MEDIATOR_STRUCTURE": "ci-angouleme",
    }
    for k, v in exports.items():
        print(f"export {k}='{v}'")


if __name__ == "__main__":
    main()
