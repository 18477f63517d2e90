# python3 workload of `alloc8 bench`: objects of every common kind, made,
# kept, sorted, serialised and dropped; run with PYTHONMALLOC=malloc so each
# object is a malloc call. argv[1] = N records.
import json
import random
import sys

n = int(sys.argv[1])
rng = random.Random(8)
records = {}
for i in range(n):
    key = "k%08d" % rng.randrange(n * 4)
    records[key] = {"id": i, "name": "name-%d" % i, "tags": [str(i % 7), str(i % 11)], "score": rng.random()}
ranked = sorted(records.values(), key=lambda r: (r["score"], r["id"]))
text = json.dumps(ranked[: n // 2])
back = json.loads(text)
words = " ".join(r["name"] for r in back).split()
counts = {}
for w in words:
    counts[w[-1]] = counts.get(w[-1], 0) + 1
del records, ranked, text
if len(back) != n // 2 or sum(counts.values()) != len(words):
    sys.exit("python3 workload: wrong result")
