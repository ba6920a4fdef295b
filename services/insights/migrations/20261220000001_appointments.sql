-- Appointments and attendance (issue 24): the facts the funnel's steps "appointment set"
-- and "attended", the delay until the appointment and the no-show rates come from. No
-- place text, no person: only times, the structure and whether the person came.

-- Each set, move and cancellation of a referral's appointment, by its version (which
-- grows with each). The one with the highest version says whether an appointment stands:
-- a cancelled one does not count as set unless set again, a moved one counts once.
CREATE TABLE insights.appointments (
    referral_id  uuid NOT NULL,
    version      bigint NOT NULL,
    -- `set` (set or moved) or `cancelled`.
    kind         text NOT NULL CHECK (kind IN ('set', 'cancelled')),
    structure_id text NOT NULL,
    -- The appointment's time; NULL for a cancellation.
    at           timestamptz,
    -- When it was set, moved or cancelled.
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (referral_id, version)
);
CREATE INDEX insights_appointments_structure ON insights.appointments (structure_id, at);

-- Whether the person came, one row per appointment (a referral's appointment is known by
-- its time): a later record of the same appointment (a higher version) replaces it.
CREATE TABLE insights.attendance (
    referral_id    uuid NOT NULL,
    appointment_at timestamptz NOT NULL,
    version        bigint NOT NULL,
    structure_id   text NOT NULL,
    attended       boolean NOT NULL,
    recorded_at    timestamptz NOT NULL,
    PRIMARY KEY (referral_id, appointment_at)
);
CREATE INDEX insights_attendance_structure ON insights.attendance (structure_id, appointment_at);
