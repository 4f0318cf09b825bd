"""What a demo platform needs beside the city and its people: the starter terminology map and
one demo account per role (the doctor at a busy public hospital, the patient registered there,
so the doctor has a care relationship with the demo patient).
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from rhip.exchange.models import code_maps
from rhip.exchange.terminology import STARTER, load_code_map
from rhip.identity.models import registrations
from rhip.registry.models import institutions
from rhip.security import DEMO_ACCOUNTS, create_demo_users
from rhip.security.service import DemoAccount


def load_starter_terminology(engine: Engine) -> int:
    """Load the shipped LOINC starter map once (an operator's own maps are kept)."""
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(code_maps)).scalar_one():
            return 0
    return load_code_map(engine, STARTER).rows


def demo_accounts(engine: Engine, env: str) -> list[DemoAccount]:
    """Create the demo accounts unless they exist; empty when there is nobody to bind them to."""
    with engine.connect() as conn:
        busiest = conn.execute(
            select(registrations.c.institution_id, func.count().label("n"))
            .join(institutions, institutions.c.id == registrations.c.institution_id)
            .where(institutions.c.type == "public_hospital")
            .group_by(registrations.c.institution_id)
            .order_by(func.count().desc(), registrations.c.institution_id)
            .limit(1)
        ).first()
        if busiest is None:
            return []
        patient = conn.execute(
            select(registrations.c.person_id)
            .where(registrations.c.institution_id == busiest.institution_id)
            .order_by(registrations.c.id)
            .limit(1)
        ).scalar_one()
    create_demo_users(engine, busiest.institution_id, patient, env=env)
    return list(DEMO_ACCOUNTS)
