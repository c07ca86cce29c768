"""The CyberTipline's enumerated values, as constants for code and documentation.

Written out from the bundled schema (2025-11-10) and NCMEC's ESP Reporting API documentation; a test checks each
constant equals the schema's enumeration. The builder itself checks values against the *loaded* schema, so a
newer schema (``SAFEHOLD_CYBERTIP_SCHEMA``) is accepted without a code change.
"""

from __future__ import annotations

INCIDENT_CSAM = "Child Pornography (possession, manufacture, and distribution)"
INCIDENT_ENTICEMENT = "Online Enticement of Children for Sexual Acts"

INCIDENT_TYPES = (  # simpleType incidentType
    INCIDENT_CSAM,
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    INCIDENT_ENTICEMENT,
    "Unsolicited Obscene Material Sent to a Child",
)

REPORT_ANNOTATIONS = (  # complexType reportAnnotations: flags, written <name>true</name>
    "sextortion",
    "csamSolicitation",
    "minorToMinorInteraction",
    "spam",
    "sadisticOnlineExploitation",
)

# In NCMEC's documentation but not in the bundled schema: usable only with a schema that declares them.
DOCUMENTED_REPORT_ANNOTATIONS = ("informational",)

FILE_ANNOTATIONS = (  # complexType fileAnnotations: flags
    "animeDrawingVirtualHentai",
    "potentialMeme",
    "viral",
    "possibleSelfProduction",
    "physicalHarm",
    "violenceGore",
    "bestiality",
    "liveStreaming",
    "infant",
    "generativeAi",
)

# The industry classification (simpleType fileClassification): A = prepubescent, B = pubescent;
# 1 = sex act, 2 = lascivious exhibition.
INDUSTRY_CLASSIFICATIONS = ("A1", "A2", "B1", "B2")

FILE_RELEVANCE = ("Reported", "Supplemental Reported")
IP_CAPTURE_EVENTS = ("Login", "Registration", "Purchase", "Upload", "Other", "Unknown")  # simpleType ipCaptureType
METADATA_TYPES = ("EXIF", "HASH")  # attribute type of fileDetails/details
BATCHED_REPORT_REASONS = ("VIRAL_POTENTIAL_MEME",)
ADDRESS_TYPES = ("Home", "Business", "Billing", "Shipping", "Technical")
EMAIL_TYPES = ("Home", "Work", "Business", "Recovery")
PHONE_TYPES = ("Mobile", "Home", "Business", "Work", "Fax", "Internet", "Recovery")
ASSOCIATED_ACCOUNT_TYPES = ("Billing", "Linked", "Business", "Creator", "Parent/Guardian", "Other")

# originalFileHash/@hashType is free text in the schema; these are the names Safehold writes.
HASH_TYPES = ("MD5", "SHA1", "SHA256", "PDQ")

# simpleType country (ISO 3166-1 alpha-2 plus NCMEC's A1, A2, O1, AP, EU, FX, XK …) and state (US states and
# territories). Both also allow "", which the builder expresses by leaving the element out.
COUNTRIES = tuple(
    """
    A1 A2 O1 AD AE AF AG AI AL AM AN AO AP AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CX CW CY CZ DE DJ DK DM DO DZ EC EE EG EH ER
    ES ET EU FI FJ FK FM FO FR FX GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID
    IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA
    MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA
    PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST
    SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK
    YE YT ZA ZM ZW
    """.split()
)
STATES = tuple(
    """
    AK AL AR AZ CA CO CT DC DE FL GA GU HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE NH NJ NM NV NY
    OH OK OR PA PR RI SC SD TN TX UT VA VI VT WA WI WV WY
    """.split()
)

# Schema type name -> constant, for the test that keeps them equal and for anyone listing the vocabulary.
ENUMERATIONS = {
    "incidentType": INCIDENT_TYPES,
    "fileClassification": INDUSTRY_CLASSIFICATIONS,
    "fileRelevance": FILE_RELEVANCE,
    "ipCaptureType": IP_CAPTURE_EVENTS,
    "metadataTypes": METADATA_TYPES,
    "batchedReportReason": BATCHED_REPORT_REASONS,
    "addressType": ADDRESS_TYPES,
    "emailType": EMAIL_TYPES,
    "phoneType": PHONE_TYPES,
    "associatedAccountType": ASSOCIATED_ACCOUNT_TYPES,
    "country": COUNTRIES,
    "state": STATES,
}
FLAGS = {"reportAnnotations": REPORT_ANNOTATIONS, "fileAnnotations": FILE_ANNOTATIONS}
