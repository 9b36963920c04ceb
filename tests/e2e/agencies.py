"""The nine partners' exports as their own systems write them: headers, words, dates.

Written by hand for this test from what each agency's system produces (the
shipped profiles were read by eye for which spellings they accept; nothing
here is loaded from them). Each agency's risk words carry the hub risk codes
they mean, and each online word what it says about the online component:
that meaning, not the adapter's mapping, is what the ground truth counts.

An agency without an online-component field (spa, education, youth service,
relationships, voluntary, counselling) records an online risk by naming it:
a record with a risk word is online, one without says nothing (not assessed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

YES, NO, NOT_ASSESSED = "YES", "NO", "NOT_ASSESSED"

Cells = dict[str, object]  # header -> value (text; JSON numbers, lists, nulls; DateCell)


@dataclass(frozen=True)
class DateCell:
    """A real date cell of a workbook (not text), shown in Excel's `number_format`."""

    day: date
    number_format: str


@dataclass(frozen=True)
class Content:
    """What one row of a record says, in the agency's own words; a correction changes it."""

    event: str  # the agency's word for what happened (activity, occurrence type, ...)
    online: str  # YES / NO / NOT_ASSESSED: what the row says about the online component
    risks: tuple[str, ...]  # the agency's risk words
    outcome: str
    role: str = ""
    level: str = ""  # spa: the level of need
    withdrawn: bool = False  # a status row that withdraws the record (or its referral)


@dataclass(frozen=True)
class Shown:
    """One row as an agency shows it: identifiers as it writes them ("" when absent)."""

    record_id: str
    person_id: str  # the agency's own person id (police, spa, education, counselling)
    family: str
    given: str
    born: date | None
    nhs: str  # ten digits
    sex: str  # F / M
    postcode: str
    when: datetime
    style: int  # stable per record: which of the agency's habits (date format, ...) it shows
    content: Content
    online_word: str  # the word written for `content.online` (agencies have several)
    platform: str


@dataclass(frozen=True)
class Agency:
    name: str  # the agency id and its `--profile`
    full: bool  # monthly full snapshots (True) or incremental files
    suffix: str
    encoding: str
    newline: str
    delimiter: str
    events: tuple[str, ...]  # its words for what happened; the first is the usual one
    withdrawal: str  # its status word that withdraws a record, "" when it has none
    online: Mapping[str, tuple[str, ...]]  # YES/NO/NOT_ASSESSED -> its words; {}: no field
    risks: Mapping[str, tuple[str, ...]]  # its risk words -> the hub risk codes they mean
    outcomes: tuple[str, ...]  # the first: what an open case shows
    platforms: tuple[str, ...]
    render: Callable[[Shown], Cells]
    separator: str = ";"
    roles: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()

    def codes(self, words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({code for word in words for code in self.risks[word]}))

    def meaning(self, content: Content) -> tuple[object, ...]:
        """What a row says, whatever words it uses: a correction changes this."""
        c = content
        return (c.event, c.online, self.codes(c.risks), c.outcome, c.role, c.level, c.withdrawn)

    def online_of(self, risks: tuple[str, ...]) -> str:
        """For an agency with no online field: a named online risk is the assessment."""
        return YES if risks else NOT_ASSESSED

    def headers(self) -> tuple[str, ...]:
        """The header row: the agency's columns, in its system's order."""
        nobody = Content(event="", online=NOT_ASSESSED, risks=(), outcome="")
        when = datetime(2026, 1, 1)
        blank = Shown("", "", "", "", None, "0000000000", "F", "", when, 0, nobody, "", "")
        return tuple(self.render(blank))


def _d(day: date | None, fmt: str = "%d/%m/%Y") -> str:
    return "" if day is None else day.strftime(fmt)


def _sep(row: Shown, separator: str) -> str:
    return separator.join(row.content.risks)


# --- CAMHS: reporting-database extract, UTF-8 with a byte-order mark ---------------------
def _camhs(row: Shown) -> Cells:
    when = row.when.strftime("%d/%m/%Y %H:%M" if row.style % 4 == 0 else "%d/%m/%Y")
    nhs = f"{row.nhs[:3]} {row.nhs[3:6]} {row.nhs[6:]}"
    return {
        "Referral ID": row.record_id,
        "Activity Type": row.content.event,
        "Activity Date": when,
        "NHS Number": nhs,
        "Patient Surname": row.family,
        "Patient Forename": row.given,
        "Patient DOB": _d(row.born),
        "Gender": {"F": "Female", "M": "Male"}[row.sex] if row.family else "",
        "Patient Postcode": row.postcode if row.family else "",
        "Online Element": row.online_word,
        "Online Harm Type": _sep(row, ";"),
        "Online Platform": row.platform,
        "Outcome": row.content.outcome,
        "LAC": "",
        "SEND": "Y" if row.style % 7 == 3 else "",
    }


CAMHS = Agency(
    name="camhs",
    full=False,
    suffix=".csv",
    encoding="utf-8-sig",
    newline="\r\n",
    delimiter=",",
    events=("Referral", "Choice Appointment", "Partnership Appointment", "Discharge"),
    withdrawal="Referral Withdrawn",
    online={YES: ("Yes", "Y"), NO: ("No", "N"), NOT_ASSESSED: ("Not asked", "")},
    risks={
        "Cyber bullying": ("CYBERBULLYING",),
        "Online bullying": ("CYBERBULLYING",),
        "Self-harm content online": ("SELF_HARM_CONTENT",),
        "Pro-ana / eating disorder sites": ("EATING_DISORDER_CONTENT",),
        "Online grooming": ("GROOMING",),
        "Sextortion": ("SEXTORTION",),
        "Image-based abuse": ("NUDE_IMAGE_SHARING_U18", "PRIVACY_BREACH_DOXXING"),
        "Excessive gaming / screen time": ("EXCESSIVE_USE",),
        "Contact from strangers online": ("UNWANTED_STRANGER_CONTACT",),
    },
    outcomes=(
        "Accepted - ongoing",
        "Advice and guidance",
        "Signposted",
        "Referred to Early Help",
        "Not accepted - NFA",
    ),
    platforms=("Social media", "Messaging app", "Online gaming", "Video sharing"),
    render=_camhs,
)


# --- Police: records management system, one row per person per occurrence, cp1252 --------
def _police(row: Shown) -> Cells:
    return {
        "OCC No": row.record_id,
        "Occurrence Type": row.content.event,
        "Reported Date/Time": row.when.strftime("%d/%m/%Y %H:%M"),
        "Force Person ID": row.person_id,
        "Nominal Surname": row.family,
        "Forename 1": row.given,
        "DOB": _d(row.born),
        "Sex": row.sex,
        "Home Address Postcode": row.postcode,
        "Involvement": row.content.role,
        "Offence": _sep(row, "|"),
        "Cyber Flag": row.online_word,
        "Online Platform": row.platform,
        "Outcome": row.content.outcome,
    }


POLICE = Agency(
    name="police",
    full=True,
    suffix=".csv",
    encoding="cp1252",
    newline="\r\n",
    delimiter=",",
    events=("Crime", "Non-crime incident", "PPN"),
    withdrawal="Cancelled",
    online={YES: ("Cyber-enabled", "Y"), NO: ("N", "Not online")},
    risks={
        "Malicious Communications": ("ONLINE_HARASSMENT",),
        "Harassment": ("ONLINE_HARASSMENT",),
        "Stalking": ("ONLINE_HARASSMENT",),
        "Sexual communication with a child": ("GROOMING",),
        "Indecent images of children": ("CSAM",),
        "Blackmail (sextortion)": ("SEXTORTION",),
        "Disclosing private sexual photographs": (
            "NUDE_IMAGE_SHARING_U18",
            "PRIVACY_BREACH_DOXXING",
        ),
        "Fraud by false representation": ("SCAMS_FRAUD",),
        "Being concerned in supply (county lines)": ("CRIMINAL_EXPLOITATION_RECRUITMENT",),
    },
    outcomes=(
        "Under investigation",
        "Words of advice",
        "Youth caution",
        "Outcome 21 - not in the public interest",
        "PPN submitted to MASH",
        "Outcome 22 - diversionary activity",
    ),
    platforms=("Snapchat", "Instagram", "WhatsApp", "TikTok", "Roblox"),
    render=_police,
    separator="|",
    roles=("Victim", "Suspect", "Witness"),
)


# --- Children's services front door: a tab-separated SQL view ---------------------------
def _spa(row: Shown) -> Cells:
    return {
        "Contact ID": row.record_id,
        "Contact Type": row.content.event,
        "Contact Date": row.when.strftime("%Y-%m-%d %H:%M:%S"),
        "Person ID": row.person_id,
        "NHS Number": f"{row.nhs[:3]} {row.nhs[3:6]} {row.nhs[6:]}" if row.nhs else "",
        "Surname": row.family,
        "Forename": row.given,
        "DOB": _d(row.born, "%Y-%m-%d"),
        "Gender": {"F": "Female", "M": "Male"}[row.sex],
        "Postcode": row.postcode,
        "Level of Need": row.content.level,
        "Online Factors": _sep(row, ","),
        "Contact Outcome": row.content.outcome,
        "CLA": "N",
        "Young Carer": "Y" if row.style % 9 == 4 else "N",
    }


SPA = Agency(
    name="spa",
    full=False,
    suffix=".tsv",
    encoding="utf-8",
    newline="\n",
    delimiter="\t",
    events=("Contact", "Referral", "Single Assessment", "Strategy Discussion"),
    withdrawal="",
    online={},
    risks={
        "Cyber bullying": ("CYBERBULLYING",),
        "CSE - online": ("GROOMING",),
        "Online sexual abuse": ("GROOMING", "CSAM"),
        "Sexting": ("NUDE_IMAGE_SHARING_U18",),
        "Sextortion": ("SEXTORTION",),
        "County lines - social media": ("CRIMINAL_EXPLOITATION_RECRUITMENT",),
        "Online harassment": ("ONLINE_HARASSMENT",),
        "Contact from unknown adults online": ("UNWANTED_STRANGER_CONTACT",),
    },
    outcomes=(
        "Open - ongoing",
        "NFA",
        "Information and advice",
        "Step down to Early Help",
        "Progress to referral",
        "Refer to CAMHS",
    ),
    platforms=(),
    render=_spa,
    separator=",",
    levels=(
        "Level 1 - Universal",
        "Level 2 - Early Help",
        "Level 3 - Targeted / CIN",
        "Level 4 - Specialist / CP",
    ),
)


# --- School nursing: community health record system --------------------------------------
def _school_nursing(row: Shown) -> Cells:
    return {
        "Event ID": row.record_id,
        "Contact Type": row.content.event,
        "Contact Date": row.when.strftime("%d %b %Y"),
        "NHS No.": row.nhs,
        "Surname": row.family,
        "First Name": row.given,
        "Date of Birth": _d(row.born),
        "Gender": {"F": "Female", "M": "Male"}[row.sex] if row.family else "",
        "Postcode": row.postcode if row.family else "",
        "Online Safety Concern": row.online_word,
        "Online Safety Concern Type": _sep(row, ";"),
        "Outcome": row.content.outcome,
        "SEND": "",
    }


SCHOOL_NURSING = Agency(
    name="school-nursing",
    full=False,
    suffix=".csv",
    encoding="utf-8",
    newline="\n",
    delimiter=",",
    events=("Drop-in", "Face to face contact", "Health assessment", "Safeguarding referral"),
    withdrawal="",
    online={YES: ("Yes",), NO: ("No",), NOT_ASSESSED: ("Not discussed", "")},
    risks={
        "Cyberbullying": ("CYBERBULLYING",),
        "Sharing nudes": ("NUDE_IMAGE_SHARING_U18",),
        "Excessive screen time": ("EXCESSIVE_USE",),
        "Sleep affected by phone use": ("EXCESSIVE_USE",),
        "Self-harm websites": ("SELF_HARM_CONTENT",),
        "Body image / eating disorder content": ("EATING_DISORDER_CONTENT",),
        "Contact from strangers online": ("UNWANTED_STRANGER_CONTACT",),
        "Online grooming": ("GROOMING",),
    },
    outcomes=(
        "Follow-up planned",
        "Advice given",
        "Referred to CAMHS",
        "Referred to MASH",
        "No action",
    ),
    platforms=(),
    render=_school_nursing,
)


# --- Schools: the safeguarding log ----------------------------------------------------------
def _education(row: Shown) -> Cells:
    return {
        "Incident ID": row.record_id,
        "Record Type": row.content.event,
        "Date/Time": row.when.strftime("%d/%m/%Y %H:%M"),
        "UPN": row.person_id,
        "Legal Surname": row.family,
        "Legal Forename": row.given,
        "DOB": _d(row.born),
        "Gender": row.sex,
        "Postcode": row.postcode,
        "Categories": _sep(row, ","),
        "Pupil Involvement": row.content.role,
        "Action Taken": row.content.outcome,
        "SEN Status": ("", "", "K", "", "E")[row.style % 5],
    }


EDUCATION = Agency(
    name="education",
    full=True,
    suffix=".csv",
    encoding="utf-8-sig",
    newline="\r\n",
    delimiter=",",
    events=("Safeguarding concern", "Disclosure", "Conversation with pupil", "Referral to MASH"),
    withdrawal="",
    online={},
    risks={
        "Online Safety - Cyberbullying": ("CYBERBULLYING",),
        "Online Safety - Sharing nudes and semi-nudes": ("NUDE_IMAGE_SHARING_U18",),
        "Online Safety - Grooming": ("GROOMING",),
        "Online Safety - Inappropriate Content": ("PORNOGRAPHY_EXPOSURE",),
        "Online Safety - Inappropriate use of social media": ("ONLINE_HARASSMENT",),
        "Online Safety - Gaming": ("EXCESSIVE_USE",),
        "Online Safety - Scam / Phishing": ("SCAMS_FRAUD",),
        "Online Safety - Hate / Racist Content": ("HATE_CONTENT",),
    },
    outcomes=(
        "DSL informed - monitor",
        "Advice given to pupil",
        "Early Help",
        "Referred to MASH",
        "No further action",
    ),
    platforms=(),
    render=_education,
    separator=",",
    roles=("Victim", "Alleged perpetrator", "Witness"),
)


# --- Youth service: the hand-kept workbook itself (.xlsx), sent as it is ------------------
YOUTH_DATE_FORMATS = ("%d/%m/%Y", "%d-%b-%y", "%Y-%m-%d", "%d.%m.%Y")
#: How Excel shows a date cell typed in each of the staff's formats.
YOUTH_DATE_CELLS = {
    "%d/%m/%Y": "dd/mm/yyyy",
    "%d-%b-%y": "dd-mmm-yy",
    "%Y-%m-%d": "yyyy-mm-dd",
    "%d.%m.%Y": "dd.mm.yyyy",
}


def _youth_date(day: date | None, fmt: str, typed: bool) -> object:
    """A real date cell shown the way it was typed; or, in a cell formatted as Text, the text."""
    if day is None:
        return ""
    return day.strftime(fmt) if typed else DateCell(day, YOUTH_DATE_CELLS[fmt])


def _youth(row: Shown) -> Cells:
    fmt = YOUTH_DATE_FORMATS[row.style % len(YOUTH_DATE_FORMATS)]
    born_fmt = YOUTH_DATE_FORMATS[(row.style // 4) % len(YOUTH_DATE_FORMATS)]
    # A few rows were typed into cells formatted as Text (pasted from last year's sheet).
    typed, born_typed = row.style // 4 % 8 == 5, row.style // 16 % 8 == 2
    return {
        "Ref No": row.record_id,
        "Type of Contact": row.content.event,
        "Date of Session": _youth_date(row.when.date(), fmt, typed),
        "Surname": row.family,
        "First name": row.given,
        "D.O.B": _youth_date(row.born, born_fmt, born_typed),
        "M/F": row.sex,
        "Post code": row.postcode,
        "Online issue": _sep(row, ","),
        "Outcome": row.content.outcome,
        "NEET": "",
    }


YOUTH = Agency(
    name="youth-service",
    full=True,
    suffix=".xlsx",
    encoding="",  # a workbook: no text encoding, line ending or delimiter
    newline="",
    delimiter="",
    events=("Drop in", "Detached", "1:1", "Referral in", "Group work"),
    withdrawal="",
    online={},
    risks={
        "Cyber bullying": ("CYBERBULLYING",),
        "Online fights / drama": ("CYBERBULLYING", "ONLINE_HARASSMENT"),
        "Nudes": ("NUDE_IMAGE_SHARING_U18",),
        "Gangs / county lines on social media": ("CRIMINAL_EXPLOITATION_RECRUITMENT",),
        "Gaming all night": ("EXCESSIVE_USE",),
        "Gambling": ("ONLINE_GAMBLING",),
        "Hate stuff online": ("HATE_CONTENT",),
    },
    outcomes=("Ongoing work", "Advice", "Signposted", "Early help", "NFA"),
    platforms=(),
    render=_youth,
    separator=",",
)


# --- Respect and teenage pregnancy team: a spreadsheet -------------------------------------
def _relationships(row: Shown) -> Cells:
    fmt = "%d-%b-%Y" if row.style % 3 == 1 else "%d/%m/%Y"
    return {
        "Case Ref": row.record_id,
        "Work Type": row.content.event,
        "Date Seen": row.when.strftime(fmt),
        "Last Name": row.family,
        "First Name": row.given,
        "DOB": _d(row.born),
        "Gender": row.sex,
        "Presenting Issues": _sep(row, ";"),
        "Next Steps": row.content.outcome,
    }


RELATIONSHIPS = Agency(
    name="relationships",
    full=True,
    suffix=".csv",
    encoding="utf-8-sig",
    newline="\r\n",
    delimiter=",",
    events=("1:1 support", "Referral", "Initial assessment", "Group session"),
    withdrawal="",
    online={},
    risks={
        "Inappropriate use of social media": ("NUDE_IMAGE_SHARING_U18",),
        "Pressure to send nudes": ("NUDE_IMAGE_SHARING_U18",),
        "Controlling behaviour online": ("ONLINE_HARASSMENT",),
        "Met someone online": ("UNWANTED_STRANGER_CONTACT",),
        "Sextortion": ("SEXTORTION",),
    },
    outcomes=("Ongoing support", "Advice/info", "Referred to sexual health", "Closed - NFA"),
    platforms=(),
    render=_relationships,
)


# --- Local charities: tab-delimited text from a Windows spreadsheet --------------------------
def _voluntary(row: Shown) -> Cells:
    age = ""
    if row.born is not None and row.style % 2 == 0:
        day = row.when.date()
        age = str(
            day.year - row.born.year - ((day.month, day.day) < (row.born.month, row.born.day))
        )
    return {
        "Contact No": row.record_id,
        "Contact type": row.content.event,
        "Contact date": row.when.strftime("%d/%m/%Y"),
        "Surname": row.family,
        "First name": row.given,
        "Date of birth": _d(row.born),
        "Age": age,
        "Gender": row.sex,
        "Postcode": row.postcode,
        "Online concern": _sep(row, ";"),
        "What happened next": row.content.outcome,
    }


VOLUNTARY = Agency(
    name="voluntary",
    full=True,
    suffix=".tsv",
    encoding="cp1252",
    newline="\r\n",
    delimiter="\t",
    events=("Advice line", "Outreach", "Drop-in", "Referral received"),
    withdrawal="",
    online={},
    risks={
        "Cyber bullying": ("CYBERBULLYING",),
        "Online scams": ("SCAMS_FRAUD",),
        "Online gambling": ("ONLINE_GAMBLING",),
        "Grooming concerns": ("GROOMING",),
        "Strangers messaging": ("UNWANTED_STRANGER_CONTACT",),
        "Too much time online": ("EXCESSIVE_USE",),
    },
    outcomes=("Ongoing support", "Advice given", "Signposted", "Early help", "NFA"),
    platforms=(),
    render=_voluntary,
)


# --- Online counselling: JSON lines pushed by the provider -----------------------------------
def _counselling(row: Shown) -> Cells:
    age: int | None = None
    if row.born is not None:
        day = row.when.date()
        age = day.year - row.born.year - ((day.month, day.day) < (row.born.month, row.born.day))
    return {
        "session_id": row.record_id,
        "event": row.content.event,
        "session_date": row.when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user_id": row.person_id or None,
        "age": age,
        "gender": {"F": "girl", "M": "boy"}[row.sex],
        "area": "E08000035",
        "presenting_issues": list(row.content.risks),
        "outcome": row.content.outcome,
    }


COUNSELLING = Agency(
    name="counselling",
    full=False,
    suffix=".jsonl",
    encoding="utf-8",
    newline="\n",
    delimiter="",
    events=("chat_session", "registration", "assessment", "safeguarding_escalation"),
    withdrawal="",
    online={},
    risks={
        "online bullying": ("CYBERBULLYING",),
        "nudes": ("NUDE_IMAGE_SHARING_U18",),
        "online grooming": ("GROOMING",),
        "sextortion": ("SEXTORTION",),
        "self-harm content": ("SELF_HARM_CONTENT",),
        "eating disorder content": ("EATING_DISORDER_CONTENT",),
        "gaming addiction": ("EXCESSIVE_USE",),
        "strangers online": ("UNWANTED_STRANGER_CONTACT",),
    },
    outcomes=("ongoing support", "advice given", "signposted", "referred to camhs", "ended"),
    platforms=(),
    render=_counselling,
)

#: In the order the test runs them each month.
AGENCIES: tuple[Agency, ...] = (
    CAMHS,
    POLICE,
    SPA,
    SCHOOL_NURSING,
    EDUCATION,
    YOUTH,
    RELATIONSHIPS,
    VOLUNTARY,
    COUNSELLING,
)
BY_NAME: dict[str, Agency] = {agency.name: agency for agency in AGENCIES}
