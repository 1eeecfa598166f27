"""The CDISC submission package (cdisc.md): SDTM and ADaM datasets as SAS transport v5 and Dataset-JSON v1.1
with a define.xml per standard, written from the published warehouse as the night's last stage.

build.py runs one SQL model per dataset (warehouse/submission/) shaped by the variable metadata
(variables/<NAME>.csv, codelists.csv, datasets.csv); files.py and define.py write the files from the same
metadata; package.py writes the whole package and swaps it in; manifest.py says where and when."""
