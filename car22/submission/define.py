"""define.xml (Define-XML 2.1 on ODM 1.3.2) of one standard's datasets, generated from the same variable
metadata as the files (cdisc.md "Checks that must hold"): every dataset with exactly its variables in order,
data type, length, label, origin, derivation method and the codelists used; sponsor-defined codelists are
declared so (def:IsNonStandard and a comment), CDISC ones point at the CT standard (setting cdisc.ct_version)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from car22.config import Protocol
from car22.submission.build import Dataset, codelists
from car22.submission.files import item_oid

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
XLINK = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ET.register_namespace("", ODM)
ET.register_namespace("def", DEF)
ET.register_namespace("xlink", XLINK)

DEFINE_TYPES = {"text": "text", "integer": "integer", "float": "float", "date": "date", "datetime": "datetime",
                "sasdate": "integer"}
SPONSOR_CODELIST = "COM.SPONSOR.CODELIST"
ASCII_COMMENT = "COM.ASCII"


def _o(tag: str) -> str:
    return f"{{{ODM}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{DEF}}}{tag}"


def _description(parent: ET.Element, text: str) -> None:
    translated = ET.SubElement(ET.SubElement(parent, _o("Description")), _o("TranslatedText"))
    translated.set(XML_LANG, "en")
    translated.text = text


def define_xml(datasets: list[Dataset], lengths: dict[str, dict[str, int]], standard: str, protocol: Protocol,
               created: str, version: str) -> bytes:
    """The define.xml of the `standard` ("SDTM" or "ADaM") folder: its datasets and, by dataset and variable,
    the length of every text variable (build.Built.lengths)."""
    settings = protocol["cdisc"]
    studyid = settings["studyid"]
    tabulation = standard == "SDTM"
    ig_oid = "STD.SDTMIG" if tabulation else "STD.ADAMIG"
    ct_oid = "STD.CT.SDTM" if tabulation else "STD.CT.ADAM"
    root = ET.Element(_o("ODM"), {
        "FileType": "Snapshot", "FileOID": f"DEFINE.{studyid}.{standard.upper()}", "ODMVersion": "1.3.2",
        "CreationDateTime": created, "Originator": "car22", "SourceSystem": "car22",
        "SourceSystemVersion": version, _d("Context"): "Submission"})
    study = ET.SubElement(root, _o("Study"), {"OID": f"STUDY.{studyid}"})
    globals_ = ET.SubElement(study, _o("GlobalVariables"))
    ET.SubElement(globals_, _o("StudyName")).text = studyid
    ET.SubElement(globals_, _o("StudyDescription")).text = (
        "Phase 2 CD22 CAR T-cells to extend remission after CD19 CAR T-cells in B-ALL")
    ET.SubElement(globals_, _o("ProtocolName")).text = studyid
    mdv = ET.SubElement(study, _o("MetaDataVersion"), {
        "OID": f"MDV.{standard.upper()}", "Name": f"{studyid} {standard}",
        "Description": f"{standard} datasets written by car22 from the published warehouse",
        _d("DefineVersion"): "2.1.0"})
    standards = ET.SubElement(mdv, _d("Standards"))
    ET.SubElement(standards, _d("Standard"), {
        "OID": ig_oid, "Name": "SDTMIG" if tabulation else "ADaMIG", "Type": "IG",
        "Version": settings["sdtmig_version"] if tabulation else settings["adamig_version"], "Status": "Final"})
    ET.SubElement(standards, _d("Standard"), {
        "OID": ct_oid, "Name": "CDISC/NCI", "Type": "CT", "PublishingSet": "SDTM" if tabulation else "ADaM",
        "Version": settings["ct_version"], "Status": "Final"})

    used_codelists: list[str] = []
    methods: list[tuple[str, str, str]] = []
    item_defs = []
    for dataset in datasets:
        group = ET.SubElement(mdv, _o("ItemGroupDef"), {
            "OID": f"IG.{dataset.name}", "Name": dataset.name, "SASDatasetName": dataset.name,
            "Repeating": "No" if dataset.name in ("DM", "ADSL") else "Yes", "IsReferenceData": "No",
            "Purpose": "Tabulation" if tabulation else "Analysis", _d("Structure"): dataset.structure,
            _d("StandardOID"): ig_oid, _d("ArchiveLocationID"): f"LF.{dataset.name}",
            _d("CommentOID"): ASCII_COMMENT, **({"Domain": dataset.name} if tabulation else {})})
        _description(group, dataset.label)
        for order, variable in enumerate(dataset.variables, start=1):
            ref = {"ItemOID": item_oid(dataset.name, variable.name), "OrderNumber": str(order),
                   "Mandatory": "Yes" if variable.core == "Req" else "No"}
            if variable.key:
                ref["KeySequence"] = str(variable.key)
            if variable.origin == "Derived":
                ref["MethodOID"] = f"MT.{dataset.name}.{variable.name}"
                methods.append((ref["MethodOID"], f"{dataset.name}.{variable.name}", variable.source))
            ET.SubElement(group, _o("ItemRef"), ref)
            item_defs.append((dataset, variable))
            if variable.codelist and variable.codelist not in used_codelists:
                used_codelists.append(variable.codelist)
        cls = ET.SubElement(group, _d("Class"), {"Name": dataset.cls})
        if dataset.subclass:
            ET.SubElement(cls, _d("SubClass"), {"Name": dataset.subclass})
        leaf = ET.SubElement(group, _d("leaf"), {"ID": f"LF.{dataset.name}",
                                                 f"{{{XLINK}}}href": f"{dataset.name.lower()}.xpt"})
        ET.SubElement(leaf, _d("title")).text = f"{dataset.name.lower()}.xpt"

    for dataset, variable in item_defs:
        attributes = {"OID": item_oid(dataset.name, variable.name), "Name": variable.name,
                      "SASFieldName": variable.name, "DataType": DEFINE_TYPES[variable.type]}
        if variable.type in ("text", "date", "datetime"):
            attributes["Length"] = str(lengths[dataset.name][variable.name])
        elif variable.type in ("integer", "sasdate"):
            attributes["Length"] = "8"
        if variable.type == "sasdate":
            attributes[_d("DisplayFormat")] = "DATE9."
        item = ET.SubElement(mdv, _o("ItemDef"), attributes)
        _description(item, variable.label)
        if variable.codelist:
            ET.SubElement(item, _o("CodeListRef"), {"CodeListOID": f"CL.{variable.codelist}"})
        origin = ET.SubElement(item, _d("Origin"), {"Type": variable.origin})
        if variable.origin != "Derived":  # a derived variable's text is its MethodDef
            _description(origin, variable.source)

    terms = codelists()
    for name in used_codelists:
        rows = [t for t in terms if t["codelist"] == name]
        if not rows:
            raise ValueError(f"codelist {name} is used in the variable metadata but not in codelists.csv")
        sponsor = rows[0]["sponsor"] == "Y"
        attributes = {"OID": f"CL.{name}", "Name": rows[0]["name"], "DataType": "text"}
        if sponsor:
            attributes.update({_d("IsNonStandard"): "Yes", _d("CommentOID"): SPONSOR_CODELIST})
        else:
            attributes[_d("StandardOID")] = ct_oid
        codelist = ET.SubElement(mdv, _o("CodeList"), attributes)
        for row in rows:
            term = ET.SubElement(codelist, _o("CodeListItem"), {"CodedValue": row["value"]})
            decode = ET.SubElement(ET.SubElement(term, _o("Decode")), _o("TranslatedText"))
            decode.set(XML_LANG, "en")
            decode.text = row["decode"]

    for oid, name, text in methods:
        method = ET.SubElement(mdv, _o("MethodDef"), {"OID": oid, "Name": f"Algorithm for {name}",
                                                      "Type": "Computation"})
        _description(method, text)
    comment = ET.SubElement(mdv, _d("CommentDef"), {"OID": SPONSOR_CODELIST})
    _description(comment, "Sponsor-defined codelist (not CDISC Controlled Terminology): the values car22 writes, "
                          "listed in car22/submission/codelists.csv")
    comment = ET.SubElement(mdv, _d("CommentDef"), {"OID": ASCII_COMMENT})
    _description(comment, "SAS transport v5: character values are ASCII of at most 200 bytes; the micro sign "
                          "(µ) is written u (e.g. cells/uL, copies/ug gDNA) and accents are dropped")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"
