"""The check tables, rules as data: what every field gets (fields.py), what every record gets (records.py),
and one table per source (labs.py, flow.py, qpcr.py, edc.py). car22.validation.suites writes them into the
GX suites under expectations/."""
