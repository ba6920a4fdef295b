"""Trims the full reference files (communes.csv, departements.csv) to the columns Aiguillage uses."""
import csv, os, sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/geo"
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(src, "communes.csv"), encoding="utf-8") as f, \
        open(os.path.join(here, "communes.csv"), "w", encoding="utf-8", newline="") as out:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["code", "departement", "name", "postcode", "kind", "parent", "lat", "lon", "population"])
    for r in csv.DictReader(f):
        w.writerow([r["insee_com"], r["insee_dep"], r["commune_article"] or r["commune"], r["code_postal"],
                    r["commune_type"], r["insee_parente"], r["lat"], r["lng"], r["population_2021"]])
with open(os.path.join(src, "departements.csv"), encoding="utf-8") as f, \
        open(os.path.join(here, "departements.csv"), "w", encoding="utf-8", newline="") as out:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["code", "name", "lat", "lon"])
    for r in csv.DictReader(f):
        w.writerow([r["insee_dep"], r["departement"], r["lat"], r["lng"]])
