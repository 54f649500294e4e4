#!/usr/bin/env python3
"""The host crate's layout (issue 26): no circle of imports between the modules of host/src,
and no non-test source file of 700 lines or more. Prints both and exits 1 when either fails.

An import is a `crate::` or `super::` path outside comments and outside the file's
`#[cfg(test)] mod tests`, resolved through `pub use child::Name` re-exports to the module that
defines the name; a module's use of its own ancestors is not counted (a child reads its
parent's types by design), a parent's use of its children is.
"""
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIMIT = 700
root='host/src'
files={}
for dp,dn,fn in os.walk(root):
    for f in fn:
        if f.endswith('.rs'):
            p=os.path.join(dp,f); files[p]=open(p).read()
def modpath(p):
    r=os.path.relpath(p,root)[:-3]
    parts=r.split('/')
    if parts[-1] in('mod','lib','main'): parts=parts[:-1]
    return parts
mods={tuple(modpath(p)):p for p in files}
def strip_tests(s):
    i=s.find('#[cfg(test)]\nmod tests')
    return s if i<0 else s[:i]
# names a mod.rs re-exports from its children: `pub use child::{A, B}` or `pub use child::A`
reexp={}
for p,src in files.items():
    if not (p.endswith('mod.rs') or p.endswith('lib.rs')): continue
    me=tuple(modpath(p))
    for m in re.finditer(r'pub use (\w+)::(\{[^}]*\}|\w+)',src):
        child=m.group(1); names=re.findall(r'\w+',m.group(2))
        for n in names: reexp[me+(n,)]=me+(child,)
edges={}
for p,s in files.items():
    s=strip_tests(s)
    s='\n'.join(l for l in s.split('\n') if not l.lstrip().startswith('//'))
    me=tuple(modpath(p))
    deps=set()
    for m in re.finditer(r'\b(crate|super)((?:::\w+)+)',s):
        kind,rest=m.group(1),m.group(2).split('::')[1:]
        if kind=='crate': base=[]
        else:
            base=list(me[:-1]) if not p.endswith('mod.rs') else list(me)
            # super from mod.rs goes to parent of me
            if p.endswith('mod.rs'): base=list(me[:-1])
            while rest and rest[0]=='super': base=base[:-1]; rest=rest[1:]
        path=base+rest
        for k in range(len(path),0,-1):
            if tuple(path[:k]) in reexp:
                path=list(reexp[tuple(path[:k])]); break
        # longest prefix that is a module
        best=None
        for k in range(len(path),0,-1):
            if tuple(path[:k]) in mods: best=tuple(path[:k]); break
        if best and best!=me and not (len(best)<len(me) and me[:len(best)]==best):
            deps.add(best)
    # also use super::{a, b}
    for m in re.finditer(r'use (crate|super)::\{([^}]*)\}',s):
        pass
    edges[me]=deps
# find cycles (SCCs)
index={};low={};st=[];on=set();res=[];i=[0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v]=low[v]=i[0];i[0]+=1;st.append(v);on.add(v)
    for w in edges.get(v,()):
        if w not in index: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],index[w])
    if low[v]==index[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: res.append(comp)
for v in edges:
    if v not in index: sc(v)
failed = False
print(f"import circles in {root}: {len(res)}")
for c in res:
    failed = True
    print("  circle:", ", ".join("/".join(x) for x in c))
    for a in c:
        for b in edges[a]:
            if b in c:
                print("    ", "/".join(a), "->", "/".join(b))
sizes = []
for p, src in files.items():
    body = strip_tests(src)
    sizes.append((body.count("\n"), p))
sizes.sort(reverse=True)
print(f"largest non-test files in {root} (limit {LIMIT} lines):")
for n, p in sizes[:3]:
    print(f"  {n:5} {p}")
for n, p in sizes:
    if n >= LIMIT:
        failed = True
        print(f"  too long: {p} ({n} lines)")
sys.exit(1 if failed else 0)
