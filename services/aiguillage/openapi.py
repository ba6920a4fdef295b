# Generates openapi.json (the document served at /api/v1/openapi.json):
#   python3 services/aiguillage/openapi.py > services/aiguillage/openapi.json
import json
NEEDS=["aide_demarches_administratives","maitrise_outils_numeriques","insertion_professionnelle","utilisation_securisee","parentalite_education","loisirs_creations","comprehension_monde_numerique","acces_internet_materiel","acquisition_materiel_solidaire"]
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def arr(x): return {"type":"array","items":x}
def enum(v): return {"type":"string","enum":v}
def obj(props, required=(), extra=False):
    o={"type":"object","properties":props}
    if required: o["required"]=list(required)
    if not extra: o["additionalProperties"]=False
    return o
S={"type":"string"}; N={"type":"number"}; I={"type":"integer"}; B={"type":"boolean"}; T={"type":"string","format":"date-time"}; D={"type":"string","format":"date"}
nullable=lambda t: {"oneOf":[t,{"type":"null"}]}
schemas={
 "Problem": obj({"type":S,"title":S,"status":I,"detail":S,"errors":arr(obj({"field":S,"message":S}))},["type","title","status","detail"],True),
 "Need": enum(NEEDS),
 "Accessibility": enum(["deaf","visual","motor","mental","illiteracy"]),
 "StructureMode": enum(["individual","workshop","autonomous","remote"]),
 "ReferralMode": enum(["in_person","remote"]),
 "Outcome": enum(["completed","partially_completed","unreachable","no_show","declined_by_person","redirected","other"]),
 "DeclineReason": enum(["no_capacity","out_of_scope","out_of_area","language","accessibility","duplicate","person_unreachable","other"]),
 "Status": enum(["submitted","offered","waitlisted","accepted","in_progress","closed","cancelled"]),
 "OrganisationRequest": obj({"name":S,"kind":enum(["social_service","partner"]),"territory":S},["name","territory"]),
 "Organisation": obj({"id":{"type":"string","format":"uuid"},"name":S,"kind":S,"territory":S,"created_at":T},extra=True),
 "Address": obj({"street":nullable(S),"postcode":nullable(S),"commune":nullable(S),"commune_code":nullable(S)}),
 "Point": obj({"lat":N,"lon":N},["lat","lon"]),
 "StructureRequest": obj({"name":S,"services":arr(ref("Need")),"modes":arr(ref("StructureMode")),"languages":arr(S),"other_languages":B,
    "accessibility":arr(ref("Accessibility")),"address":ref("Address"),"location":ref("Point"),"opening_hours":{"type":"string","description":"OpenStreetMap opening_hours"},
    "weekly_capacity":{"type":"integer","minimum":0,"maximum":10000},"accepting":B,"contact":obj({"phone":nullable(S),"email":nullable(S),"website":nullable(S)}),
    "fees":arr(S),"labels":arr(S),"id":{"readOnly":True},"territory":{"readOnly":True},"source":{"readOnly":True},"updated_at":{"readOnly":True}},["name","services"]),
 "Structure": {"allOf":[ref("StructureRequest"),obj({"id":S,"territory":S,"source":nullable(S),"updated_at":T},extra=True)]},
 "CapacityRequest": obj({"weekly_capacity":{"type":"integer","minimum":0,"maximum":10000},"accepting":B}),
 "ImportReport": obj({"received":I,"created":I,"updated":I,"unchanged":I,"rejected":arr(obj({"index":I,"id":nullable(S),"errors":arr(S)})),
    "unmapped_values":{"type":"object","additionalProperties":{"type":"object","additionalProperties":I}},"warnings":arr(obj({},extra=True)),
    "defaulted_modes":I,"located_by_commune":I,"probable_duplicates":arr(obj({},extra=True))},extra=True),
 "ReferralRequest": obj({
    "person": obj({"first_name":S,"last_name":S,"phone":nullable(S),"email":nullable(S),"contact_preference":enum(["phone","email","via_referrer"]),
       "commune_code":nullable(S),"postcode":nullable(S),"languages":arr(S),"accessibility":arr(ref("Accessibility"))},["first_name","last_name"]),
    "needs":arr(ref("Need")),"modes":arr(ref("ReferralMode")),"max_distance_km":N,"urgency":enum(["normal","urgent"]),"deadline":nullable(D),
    "note":nullable({"type":"string","maxLength":1000}),"consent":obj({"obtained":{"const":True},"method":nullable(S),"at":nullable(T)},["obtained"])},["person","needs","consent"]),
 "Referral": obj({"id":S,"status":ref("Status"),"created_at":T,"updated_at":T,"status_changed_at":T,"time_in_status_seconds":I,"organisation_id":S,"territory":S,
    "commune_code":S,"needs":arr(ref("Need")),"modes":arr(S),"languages":arr(S),"accessibility":arr(S),"max_distance_km":N,"urgency":S,"deadline":nullable(D),
    "attempts":I,"escalated":B,"waitlist_reason":nullable(S),
    "current_offer":nullable(obj({"structure_id":S,"structure_name":S,"offered_at":T,"expires_at":T,"distance_km":N,"score":N,"explanation":arr(S)},extra=True)),
    "structure":nullable(obj({"id":S,"name":S,"accepted_at":T,"contact":{}},extra=True)),"outcome":nullable(S),"closed_at":nullable(T),
    "person":{"description":"Only for the referrer organisation, the accepting structure and admin.","type":"object"},
    "note":nullable(S),"history":arr(obj({"at":T,"status":S,"referral_status":S,"structure_id":S,"reason":S,"actor":S,"comment":S},extra=True))},extra=True),
 "Assessment": obj({"referral_id":S,"max_distance_km":N,
    "candidates":arr(obj({"structure_id":S,"name":S,"distance_km":N,"score":N,"load":obj({"used":I,"weekly_capacity":I}),"next_opening":nullable(S),"remote":B,"explanation":arr(S)},extra=True)),
    "excluded":arr(obj({"structure_id":S,"name":S,"distance_km":N,"reasons":arr(obj({"code":enum(["not_accepting","missing_service","mode","beyond_distance","no_shared_language","accessibility","already_tried","no_capacity"]),"message":S}))},extra=True))},extra=True),
 "PreviewRequest": obj({"commune_code":S,"postcode":S,"needs":arr(ref("Need")),"modes":arr(ref("ReferralMode")),"languages":arr(S),"accessibility":arr(ref("Accessibility")),"max_distance_km":N,"urgency":enum(["normal","urgent"]),"limit":I},["needs"]),
 "Queues": obj({"territory":{},"week":S,"structures":arr(obj({"structure_id":S,"name":S,"pending_offers":I,"oldest_pending_offer_seconds":nullable(I),"accepted_this_week":I,"weekly_capacity":I,"in_progress":I},extra=True)),
    "waitlist":obj({"count":I,"escalated":I,"oldest_seconds":nullable(I),"by_reason":{"type":"object","additionalProperties":I},"items":arr(obj({},extra=True))},extra=True)},extra=True),
 "Funnel": obj({"territory":{},"from":nullable(T),"to":nullable(T),"submitted":I,"offered":I,"accepted":I,"in_progress":I,"closed":I,"cancelled":I,"waitlisted_now":I,
    "outcomes":{"type":"object","additionalProperties":I},"declines":{"type":"object","additionalProperties":I},"expired_offers":I,"offers_per_referral":N,
    "time_to_accept_seconds":obj({"p50":nullable(I),"p90":nullable(I)}),"time_to_first_contact_seconds":obj({"p50":nullable(I),"p90":nullable(I)}),"time_to_close_seconds":obj({"p50":nullable(I),"p90":nullable(I)})},extra=True),
}
def problem(code, desc): return {code: {"description": desc, "content": {"application/problem+json": {"schema": ref("Problem")}}}}
def resp(code, schema, desc="OK", headers=None):
    r={"description":desc,"content":{"application/json":{"schema":schema}}}
    if headers: r["headers"]=headers
    return {code:r}
def op(summary, ok, body=None, params=None, idem=False, extra=None, tags=None):
    o={"summary":summary,"responses":{}}
    o["responses"].update(ok)
    for c,d in [("401","No or invalid bearer token"),("403","This role may never call this endpoint"),("404","Not found, or outside the caller's scope")]:
        o["responses"].update(problem(c,d))
    if body is not None:
        o["requestBody"]={"required":True,"content":{"application/json":{"schema":body}}}
        o["responses"].update(problem("413","Body over 64 KiB")); o["responses"].update(problem("422","Invalid field(s), each named"))
        o["responses"].update(problem("400","Malformed JSON"))
    if extra: o["responses"].update(extra)
    ps=list(params or [])
    if idem: ps.append({"name":"Idempotency-Key","in":"header","schema":S,"description":"Same key and body: the first result; same key, other body: 409."})
    if ps: o["parameters"]=ps
    if tags: o["tags"]=tags
    return o
pid=lambda n="id": {"name":n,"in":"path","required":True,"schema":S}
q=lambda n,t=S,d=None: dict({"name":n,"in":"query","schema":t}, **({"description":d} if d else {}))
conflict=problem("409","The referral's current status does not allow this (the status is in detail)")
paths={
 "/healthz":{"get":{"summary":"The process is up","security":[],"responses":{"200":{"description":"up"}}}},
 "/readyz":{"get":{"summary":"Database and broker reachable","security":[],"responses":{"200":{"description":"ready"},"503":{"description":"a dependency is unreachable"}}}},
 "/metrics":{"get":{"summary":"Prometheus metrics","security":[],"responses":{"200":{"description":"OpenMetrics text"}}}},
 "/api/v1/openapi.json":{"get":{"summary":"This document","security":[],"responses":{"200":{"description":"OpenAPI 3.1"}}}},
 "/api/v1/organisations":{"post":op("Create an organisation (admin)",resp("201",ref("Organisation"),"Created"),ref("OrganisationRequest"),idem=True,tags=["directory"]),
    "get":op("List organisations (admin)",resp("200",obj({"items":arr(ref("Organisation")),"next_cursor":nullable(S)})),params=[q("limit",I),q("cursor")],tags=["directory"])},
 "/api/v1/organisations/{id}":{"get":op("An organisation (admin, its referrers)",resp("200",ref("Organisation")),params=[pid()],tags=["directory"])},
 "/api/v1/structures":{"get":op("List structures",resp("200",obj({"items":arr(ref("Structure")),"next_cursor":nullable(S)})),params=[q("territory"),q("service",ref("Need")),q("near",S,"lat,lon"),q("radius_km",N),q("limit",I),q("cursor")],tags=["directory"])},
 "/api/v1/structures/{id}":{"put":op("Create or replace a structure (admin; coordinator of its territory)",{**resp("200",ref("Structure")),**resp("201",ref("Structure"),"Created")},ref("StructureRequest"),params=[pid()],tags=["directory"]),
    "get":op("A structure",resp("200",ref("Structure")),params=[pid()],tags=["directory"]),
    "delete":op("Remove a structure (admin; coordinator of its territory)",{"204":{"description":"Removed"}},params=[pid()],tags=["directory"])},
 "/api/v1/structures/{id}/capacity":{"put":op("Declare weekly capacity (admin; coordinator; the structure's mediators)",resp("200",ref("Structure")),ref("CapacityRequest"),params=[pid()],tags=["directory"])},
 "/api/v1/structures/import":{"post":{"summary":"Import a Mednum JSON array or CSV file, up to 50 MiB (admin; coordinator: own territories)","tags":["directory"],
    "requestBody":{"required":True,"content":{"application/json":{"schema":arr({"type":"object"})},"text/csv":{"schema":S}}},
    "responses":{**resp("200",ref("ImportReport")),**problem("401","No or invalid token"),**problem("403","Role may not import"),**problem("413","Over 50 MiB"),**problem("422","Not a Mednum file at all")}}},
 "/api/v1/referrals":{"post":op("Submit a referral (referrer)",resp("201",ref("Referral"),"Created",{"Location":{"schema":S}}),ref("ReferralRequest"),idem=True,tags=["referrals"],extra=problem("409","Idempotency-Key reused with another body")),
    "get":op("Referrals in the caller's scope, newest first (for a mediator, status=offered is the inbox)",resp("200",obj({"items":arr(ref("Referral")),"next_cursor":nullable(S)})),
        params=[q("status",ref("Status")),q("escalated",B),q("stale_days",I,"no status change for this many days"),q("limit",I),q("cursor")],tags=["referrals"])},
 "/api/v1/referrals/{id}":{"get":op("A referral, with its history",resp("200",ref("Referral")),params=[pid()],tags=["referrals"])},
 "/api/v1/referrals/{id}/accept":{"post":op("Accept the offer (mediator of the offered structure)",resp("200",ref("Referral")),obj({"mediator_name":S}),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/decline":{"post":op("Decline the offer (mediator of the offered structure); the referral is matched again",resp("200",ref("Referral")),obj({"reason":ref("DeclineReason"),"comment":S},["reason"]),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/contact":{"post":op("Record a contact (mediator of the accepting structure)",resp("200",ref("Referral")),obj({"kind":enum(["first_contact","appointment"]),"at":T}),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/close":{"post":op("Close with an outcome (mediator of the accepting structure)",resp("200",ref("Referral")),obj({"outcome":ref("Outcome"),"comment":S},["outcome"]),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/cancel":{"post":op("Cancel (the referrer organisation)",resp("200",ref("Referral")),obj({"reason":S}),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/reroute":{"post":op("Route again (coordinator of the territory; admin): to a chosen structure (force ignores capacity), or through matching with the attempts reset",resp("200",ref("Referral")),obj({"structure_id":S,"force":B,"reason":S}),params=[pid()],extra=conflict,tags=["referrals"])},
 "/api/v1/referrals/{id}/candidates":{"get":op("Why: the best feasible structures with score and explanation, and the excluded nearby ones with the constraint that excluded them (referrer organisation, admin)",resp("200",ref("Assessment")),params=[pid()],tags=["matching"])},
 "/api/v1/match/preview":{"post":op("The same for a profile with no personal data, before submitting (referrer, coordinator, admin)",resp("200",ref("Assessment")),ref("PreviewRequest"),tags=["matching"])},
 "/api/v1/insights/queues":{"get":op("Queues of a territory: pending offers by structure, the waitlist (coordinator of the territory, admin)",resp("200",ref("Queues")),params=[q("territory")],tags=["insights"])},
 "/api/v1/insights/funnel":{"get":op("Funnel of the cohort submitted in [from, to)",resp("200",ref("Funnel")),params=[q("territory"),q("from",D),q("to",D)],tags=["insights"])},
}
doc={"openapi":"3.1.0","info":{"title":"Aiguillage","version":"1","description":"Routes digital-mediation referrals from social services to the structure that can help, and tracks them until closed. Errors are RFC 9457 problem+json."},
 "servers":[{"url":"/"}],"security":[{"bearer":[]}],
 "components":{"securitySchemes":{"bearer":{"type":"http","scheme":"bearer","bearerFormat":"JWT (HS256): role and scope"}},"schemas":schemas},"paths":paths}
print(json.dumps(doc,ensure_ascii=False,indent=1))
