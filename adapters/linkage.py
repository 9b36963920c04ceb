"""The pseudonyms that link a row to a child: every identifier it carries, normalised and keyed.

A row's identifiers, best first: an NHS number (checked: ten digits, mod-11),
then name and date of birth (`name_dob_key`), then the agency's local id. The
first is the row's subject; each is keyed under the current partnership key
(and the previous keys still in the rotation window), and the others travel as
``other_subjects`` so that agencies holding them link the same child.

A child turns up in many rows of one export (each referral, contact and
assessment), and all of this is pure: the same identifiers always give the same
pseudonyms under the same key ring. So a `Linker` works out each distinct set of
identifiers once and keeps the result (at most `CACHE_LIMIT` sets, then it starts
again). The raw identifiers it keeps as keys are the rows' own, in this process's
memory only, as the rows themselves are while they are read; they are never
stored or logged.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from hub.models import LinkageBasis, Pseudonym
from hub.pseudonymise import KeyRing, Pseudonymiser, name_dob_key, normalise_nhs_number

#: Distinct identifier sets (and case ids) a `Linker` keeps before it starts again.
CACHE_LIMIT = 100_000


class Subjects(NamedTuple):
    """A row's subject (under the current and the previous keys) and its other identifiers."""

    subject: Pseudonym | None
    previous: tuple[Pseudonym, ...]
    others: tuple[Pseudonym, ...]


NO_SUBJECT = Subjects(None, (), ())
#: (NHS number, family name, given name, date of birth, local id) as the row has them.
Identifiers = tuple[str, str, str, date | None, str]


class Linker:
    """Keyed subject and case pseudonyms for one agency, each distinct input worked out once."""

    def __init__(self, pseudonymiser: Pseudonymiser, agency: str) -> None:
        self.pseudonymiser = pseudonymiser
        self.agency = agency
        self._ring: KeyRing = pseudonymiser.ring
        self._subjects: dict[Identifiers, Subjects] = {}
        self._cases: dict[str, Pseudonym] = {}

    def subjects(self, identifiers: Identifiers) -> Subjects:
        """The pseudonyms of a row's identifiers; `ValueError` (which never echoes the
        number) when the NHS number is not a valid one."""
        self._check_ring()
        known = self._subjects.get(identifiers)
        if known is None:
            known = self._link(*identifiers)
            if len(self._subjects) >= CACHE_LIMIT:
                self._subjects.clear()
            self._subjects[identifiers] = known
        return known

    def case(self, case_id: str) -> Pseudonym:
        """The agency-scoped pseudonym of a case id."""
        self._check_ring()
        known = self._cases.get(case_id)
        if known is None:
            known = self.pseudonymiser.subject(case_id, LinkageBasis.CASE, agency=self.agency)
            if len(self._cases) >= CACHE_LIMIT:
                self._cases.clear()
            self._cases[case_id] = known
        return known

    def _check_ring(self) -> None:
        """Forget everything when the pseudonymiser was given another key ring."""
        if self.pseudonymiser.ring is not self._ring:
            self._ring = self.pseudonymiser.ring
            self._subjects.clear()
            self._cases.clear()

    def _link(self, nhs: str, family: str, given: str, born: date | None, local: str) -> Subjects:
        keys: list[tuple[str, LinkageBasis]] = []
        if nhs:
            keys.append((normalise_nhs_number(nhs), LinkageBasis.NHS_NUMBER))
        if born is not None:
            key = name_dob_key(family, given, born)
            if key is not None:
                keys.append((key, LinkageBasis.NAME_DOB))
        if local:
            keys.append((" ".join(local.split()).upper(), LinkageBasis.LOCAL_ID))
        if not keys:
            return NO_SUBJECT
        p, agency = self.pseudonymiser, self.agency
        (first, basis), rest = keys[0], keys[1:]
        return Subjects(
            p.subject(first, basis, agency=agency),
            p.previous_subjects(first, basis, agency=agency),
            tuple(
                pseudonym
                for identifier, other in rest
                for pseudonym in (
                    p.subject(identifier, other, agency=agency),
                    *p.previous_subjects(identifier, other, agency=agency),
                )
            ),
        )
