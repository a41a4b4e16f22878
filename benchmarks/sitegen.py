"""Deterministic test trees: a Hugo-like site, a "rebuild" of it, a big file, many small files.

Everything here depends only on its arguments (sizes and seeds): two calls with
the same arguments produce byte-identical trees with identical mtimes.

The site looks like ``hugo``'s ``public/`` output for a blog:

* ``posts/<slug>/index.html`` for every post, some with images next to it;
* the home page and the ``posts`` section paginated 10 per page
  (``page/N/index.html``, ``posts/page/N/index.html``);
* ``tags/<tag>/`` and ``categories/<cat>/`` term pages, paginated, with RSS;
* ``css/``, ``js/`` (fingerprinted names), ``fonts/*.woff2``, ``images/``;
* ``index.xml``, ``sitemap.xml``, ``index.json`` (search index), ``404.html``.

The default 2,000-post site has 4,973 files in 3,597 directories, 158 MB
(about 1,360 images, incompressible random bytes as JPEGs are, make 115 MB).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

__all__ = [
    "BASE_MTIME",
    "RebuildStats",
    "TreeStats",
    "generate_site",
    "hugo_rebuild",
    "iter_files",
    "make_big_file",
    "make_many_files",
    "tree_stats",
]

#: mtime given to every generated file (2024-01-02 03:04:05 UTC).
BASE_MTIME = 1_704_164_645

_PER_PAGE = 10
_SITE_SEED = 20_240_102
_TEXT_SUFFIXES = frozenset({".html", ".xml", ".json", ".css", ".js", ".txt"})

_WORDS = (  # noqa: SIM905 - easier to read and edit as text
    "static site deploy server upload mirror latency packet window request reply "
    "directory file content page post tag theme layout partial template shortcode "
    "markdown front matter taxonomy term section list single summary render build "
    "asset image resize crop webp fingerprint minify bundle cache header browser "
    "network round trip bandwidth throughput queue pipeline batch atomic rename "
    "manifest checksum digest hash compare modified time size permission owner "
    "chroot account host key password login session channel subsystem protocol the "
    "a an of to in on for with from by over under about into across after before "
    "during while because although quickly slowly carefully simply really we you "
    "they it this that these those some many every each other same new old small "
    "large fast slow simple clear robust careful honest quiet bright early late"
).split()

_CATEGORIES = (
    "engineering",
    "notes",
    "release",
    "tutorial",
    "opinion",
    "travel",
    "photography",
    "misc",
)


@dataclass(frozen=True)
class TreeStats:
    """Size of a generated tree."""

    files: int
    dirs: int
    bytes: int


@dataclass(frozen=True)
class RebuildStats:
    """What :func:`hugo_rebuild` did."""

    touched: int
    same_size: int
    resized: int
    mtime: int


@dataclass(frozen=True)
class _Post:
    index: int
    title: str
    slug: str
    date: datetime
    tags: tuple[str, ...]
    category: str
    summary: str

    @property
    def url(self) -> str:
        return f"/posts/{self.slug}/"


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(_WORDS, k=count))


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def iter_files(root: Path) -> Iterator[Path]:
    """Regular files under *root*, in a stable (sorted) order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath, name)


def tree_stats(root: Path) -> TreeStats:
    files = dirs = size = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        dirs += len(dirnames)
        for name in filenames:
            files += 1
            size += os.lstat(os.path.join(_dirpath, name)).st_size
    return TreeStats(files=files, dirs=dirs, bytes=size)


def _set_mtimes(root: Path, mtime: float) -> None:
    for path in iter_files(root):
        os.utime(path, (mtime, mtime))


# --------------------------------------------------------------------------
# the site
# --------------------------------------------------------------------------


def _page(title: str, body: str, css: str, js: str, *, description: str = "") -> bytes:
    nav = "".join(f'<li><a href="/categories/{cat}/">{cat.title()}</a></li>' for cat in _CATEGORIES)
    html = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} | Bench Blog</title>\n"
        f'<meta name="description" content="{escape(description)}">\n'
        f'<link rel="stylesheet" href="/css/{css}">\n'
        f'<script defer src="/js/{js}"></script>\n'
        '<link rel="alternate" type="application/rss+xml" href="/index.xml">\n'
        "</head>\n<body>\n"
        '<header class="site-header"><a class="logo" href="/">'
        '<img src="/images/logo.png" alt="Bench Blog" width="120" height="40"></a>\n'
        f'<nav><ul><li><a href="/posts/">Posts</a></li><li><a href="/tags/">Tags</a></li>{nav}'
        "</ul></nav></header>\n"
        f'<main id="content">\n{body}\n</main>\n'
        '<footer class="site-footer"><p>&copy; Bench Blog. Built with a Hugo-like '
        'generator.</p><p><a href="/index.xml">RSS</a> · <a href="/sitemap.xml">Sitemap</a>'
        "</p></footer>\n</body>\n</html>\n"
    )
    return html.encode()


def _pager(base: str, page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    links = []
    if page > 1:
        prev = base if page == 2 else f"{base}page/{page - 1}/"
        links.append(f'<a class="prev" href="{prev}">Newer</a>')
    links.append(f"<span>Page {page} of {pages}</span>")
    if page < pages:
        links.append(f'<a class="next" href="{base}page/{page + 1}/">Older</a>')
    return '<nav class="pagination">' + " ".join(links) + "</nav>"


def _summary_list(posts: Sequence[_Post]) -> str:
    items = []
    for post in posts:
        tags = ", ".join(f'<a href="/tags/{tag}/">{tag}</a>' for tag in post.tags)
        items.append(
            f'<article class="summary"><h2><a href="{post.url}">{escape(post.title)}</a></h2>'
            f'<time datetime="{post.date:%Y-%m-%d}">{post.date:%B %d, %Y}</time>'
            f'<p>{escape(post.summary)}</p><p class="tags">{tags}</p></article>'
        )
    return "\n".join(items)


def _paginate(
    root: Path,
    base: str,
    title: str,
    posts: Sequence[_Post],
    css: str,
    js: str,
) -> None:
    """Write ``{base}index.html`` and ``{base}page/N/index.html`` (N >= 1, 1 redirects)."""
    pages = max(1, -(-len(posts) // _PER_PAGE))
    rel = base.lstrip("/")
    for page in range(1, pages + 1):
        chunk = posts[(page - 1) * _PER_PAGE : page * _PER_PAGE]
        body = f"<h1>{escape(title)}</h1>\n{_summary_list(chunk)}\n{_pager(base, page, pages)}"
        html = _page(title if page == 1 else f"{title} - page {page}", body, css, js)
        _write(root, f"{rel}index.html" if page == 1 else f"{rel}page/{page}/index.html", html)
    # Hugo writes page/1/ as an alias to the section root.
    alias = (
        f'<!DOCTYPE html><html lang="en"><head><title>{base}</title>'
        f'<link rel="canonical" href="{base}"><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={base}"></head></html>\n'
    )
    _write(root, f"{rel}page/1/index.html", alias.encode())


def _rss(title: str, link: str, posts: Sequence[_Post]) -> bytes:
    items = "".join(
        f"<item><title>{escape(p.title)}</title><link>https://blog.example.org{p.url}</link>"
        f"<pubDate>{p.date:%a, %d %b %Y %H:%M:%S} +0000</pubDate>"
        f"<guid>https://blog.example.org{p.url}</guid>"
        f"<description>{escape(p.summary)}</description></item>\n"
        for p in posts
    )
    return (
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
        '<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://blog.example.org{link}</link>\n"
        f"{items}</channel></rss>\n"
    ).encode()


def _css(rng: random.Random, rules: int) -> bytes:
    lines = []
    for i in range(rules):
        selector = f".{rng.choice(_WORDS)}-{i} .{rng.choice(_WORDS)}"
        lines.append(
            f"{selector}{{margin:{rng.randint(0, 40)}px {rng.randint(0, 40)}px;"
            f"color:#{rng.randrange(0x1000000):06x};line-height:{rng.randint(10, 20) / 10}}}"
        )
    return ("\n".join(lines) + "\n").encode()


def _js(rng: random.Random, functions: int) -> bytes:
    lines = ['"use strict";']
    for i in range(functions):
        name = f"{rng.choice(_WORDS)}{i}"
        lines.append(
            f"function {name}(e,t){{const n=document.querySelectorAll('.{rng.choice(_WORDS)}');"
            f"for(let r=0;r<n.length;r++){{n[r].dataset.k{i}=e+t*{rng.randint(1, 999)};}}"
            f"return n.length}}"
        )
    return ("\n".join(lines) + "\n").encode()


def _binary(rng: random.Random, size: int, magic: bytes) -> bytes:
    return magic + rng.randbytes(max(0, size - len(magic)))


def _make_posts(rng: random.Random, count: int) -> list[_Post]:
    tag_count = max(3, count // 10)
    tags: list[str] = []
    seen: set[str] = set()
    while len(tags) < tag_count:
        tag = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
        if tag not in seen:
            seen.add(tag)
            tags.append(tag)
    weights = [1.0 / (k + 1) for k in range(tag_count)]  # a few popular tags, a long tail
    start = datetime(2016, 1, 1, 9, 0, tzinfo=UTC)
    posts: list[_Post] = []
    slugs: set[str] = set()
    for i in range(count):
        title = _words(rng, rng.randint(3, 8)).capitalize()
        slug = "-".join(title.lower().split()[:6])
        while slug in slugs:
            slug += f"-{i}"
        slugs.add(slug)
        post_tags = tuple(sorted(set(rng.choices(tags, weights=weights, k=rng.randint(1, 4)))))
        posts.append(
            _Post(
                index=i,
                title=title,
                slug=slug,
                date=start + timedelta(days=i, minutes=rng.randint(0, 600)),
                tags=post_tags,
                category=rng.choice(_CATEGORIES),
                summary=_words(rng, 40).capitalize() + ".",
            )
        )
    posts.reverse()  # newest first, as every list page shows them
    return posts


def generate_site(root: Path, posts: int, *, seed: int = _SITE_SEED) -> TreeStats:
    """Write a Hugo-like site with *posts* posts into *root* (created; must not exist)."""
    root.mkdir(parents=True)
    rng = random.Random(seed)

    # static assets, with fingerprinted names like Hugo Pipes produces
    main_css = _css(rng, 900)
    main_js = _js(rng, 500)
    css_name = f"main.{_fingerprint(main_css)}.css"
    js_name = f"main.{_fingerprint(main_js)}.js"
    _write(root, f"css/{css_name}", main_css)
    _write(root, "css/syntax.css", _css(rng, 120))
    _write(root, f"js/{js_name}", main_js)
    search_js = _js(rng, 150)
    _write(root, f"js/search.{_fingerprint(search_js)}.js", search_js)
    _write(root, "js/vendor/highlight.min.js", _js(rng, 400))
    for family in ("inter", "source-serif", "jetbrains-mono"):
        for weight in (400, 700):
            size = rng.randint(20_000, 60_000)
            _write(root, f"fonts/{family}-{weight}.woff2", _binary(rng, size, b"wOF2"))
    _write(root, "images/logo.png", _binary(rng, 12_000, b"\x89PNG\r\n\x1a\n"))
    _write(root, "images/og-default.jpg", _binary(rng, 90_000, b"\xff\xd8\xff\xe0"))
    _write(root, "favicon.ico", _binary(rng, 4_286, b"\x00\x00\x01\x00"))
    _write(root, "robots.txt", b"User-agent: *\nSitemap: https://blog.example.org/sitemap.xml\n")

    all_posts = _make_posts(rng, posts)

    # single pages, some with images (page bundles)
    for post in all_posts:
        paragraphs = [f"<p>{_words(rng, rng.randint(30, 120)).capitalize()}.</p>"]
        paragraphs += [
            f"<p>{_words(rng, rng.randint(30, 120)).capitalize()}.</p>"
            for _ in range(rng.randint(6, 40))
        ]
        if rng.random() < 0.35:
            for n in range(1, rng.randint(1, 3) + 1):
                name = f"figure-{n}.jpg"
                _write(
                    root,
                    f"posts/{post.slug}/{name}",
                    _binary(rng, rng.randint(15_000, 160_000), b"\xff\xd8\xff\xe0"),
                )
                paragraphs.insert(
                    rng.randint(1, len(paragraphs)),
                    f'<figure><img src="{name}" alt="{escape(post.title)}" loading="lazy">'
                    f"<figcaption>{_words(rng, 8)}</figcaption></figure>",
                )
        tags = " ".join(f'<a class="tag" href="/tags/{t}/">#{t}</a>' for t in post.tags)
        body = (
            f'<article class="post"><h1>{escape(post.title)}</h1>'
            f'<p class="meta"><time datetime="{post.date:%Y-%m-%d}">{post.date:%B %d, %Y}'
            f'</time> in <a href="/categories/{post.category}/">{post.category}</a></p>\n'
            + "\n".join(paragraphs)
            + f'\n<p class="tags">{tags}</p></article>'
        )
        _write(
            root,
            f"posts/{post.slug}/index.html",
            _page(post.title, body, css_name, js_name, description=post.summary),
        )

    # list pages
    _paginate(root, "/", "Bench Blog", all_posts, css_name, js_name)
    _paginate(root, "/posts/", "Posts", all_posts, css_name, js_name)
    _write(root, "index.xml", _rss("Bench Blog", "/", all_posts))
    _write(root, "posts/index.xml", _rss("Posts", "/posts/", all_posts))

    by_tag: dict[str, list[_Post]] = {}
    by_cat: dict[str, list[_Post]] = {}
    for post in all_posts:
        for tag in post.tags:
            by_tag.setdefault(tag, []).append(post)
        by_cat.setdefault(post.category, []).append(post)
    for kind, terms in (("tags", by_tag), ("categories", by_cat)):
        listing = "".join(
            f'<li><a href="/{kind}/{term}/">{term}</a> ({len(items)})</li>'
            for term, items in sorted(terms.items())
        )
        _write(
            root,
            f"{kind}/index.html",
            _page(kind.title(), f"<h1>{kind.title()}</h1><ul>{listing}</ul>", css_name, js_name),
        )
        for term, items in sorted(terms.items()):
            _paginate(root, f"/{kind}/{term}/", term, items, css_name, js_name)
            _write(root, f"{kind}/{term}/index.xml", _rss(term, f"/{kind}/{term}/", items))

    # site-wide files
    urls = ["/", "/posts/", "/tags/", "/categories/"]
    urls += [post.url for post in all_posts]
    urls += [f"/tags/{tag}/" for tag in sorted(by_tag)]
    urls += [f"/categories/{cat}/" for cat in sorted(by_cat)]
    sitemap = "".join(f"<url><loc>https://blog.example.org{u}</loc></url>\n" for u in urls)
    _write(
        root,
        "sitemap.xml",
        (
            '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            f"{sitemap}</urlset>\n"
        ).encode(),
    )
    search = ",".join(
        f'{{"title":"{p.title}","url":"{p.url}","summary":"{p.summary}"}}' for p in all_posts
    )
    _write(root, "index.json", f"[{search}]\n".encode())
    _write(root, "404.html", _page("Not found", "<h1>404</h1>", css_name, js_name))

    _set_mtimes(root, BASE_MTIME)
    return tree_stats(root)


def hugo_rebuild(root: Path, *, mtime: int, fraction: float = 0.02, seed: int = 7) -> RebuildStats:
    """Do to *root* what ``hugo`` rebuilding the whole site does.

    Every file's mtime becomes *mtime*; *fraction* of the files (chosen with
    *seed*, at least one) get new content: half of them keep their size (a
    64-byte window in the middle changes), the other half grow.
    """
    files = list(iter_files(root))
    rng = random.Random(seed)
    count = max(1, round(len(files) * fraction)) if files else 0
    chosen = sorted(rng.sample(range(len(files)), count))
    rng.shuffle(chosen)
    same_size = set(chosen[: count // 2])
    resized = 0
    for index in chosen:
        path = files[index]
        data = path.read_bytes()
        text = path.suffix in _TEXT_SUFFIXES
        if index in same_size and data:
            start = len(data) // 2
            window = data[start : start + 64]
            new = window.swapcase() if text else bytes(b ^ 0xFF for b in window)
            if new == window:
                new = bytes(b ^ 0x01 for b in window)
            path.write_bytes(data[:start] + new + data[start + len(window) :])
        else:
            same_size.discard(index)
            extra = b"\n<!-- rebuilt -->\n" if text else rng.randbytes(1024)
            path.write_bytes(data + extra)
            resized += 1
    _set_mtimes(root, mtime)
    return RebuildStats(touched=len(files), same_size=len(same_size), resized=resized, mtime=mtime)


# --------------------------------------------------------------------------
# one big file, many small files
# --------------------------------------------------------------------------


def make_big_file(path: Path, megabytes: int, *, seed: int = 1) -> None:
    """Write *megabytes* MiB of incompressible, deterministic bytes to *path*."""
    rng = random.Random(seed)
    mib = 1 << 20
    pool = rng.randbytes(16 * mib)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for i in range(megabytes):
            offset = (i * 7_919 * 4_099) % (len(pool) - mib)
            out.write(pool[offset : offset + mib])
    os.utime(path, (BASE_MTIME, BASE_MTIME))


def make_many_files(root: Path, count: int) -> TreeStats:
    """*count* small files (16 B to 1 KB), 100 per directory, two directory levels."""
    root.mkdir(parents=True)
    made: set[Path] = set()
    for i in range(count):
        directory = root / f"d{i // 10_000:03d}" / f"d{(i // 100) % 100:02d}"
        if directory not in made:
            directory.mkdir(parents=True)
            made.add(directory)
        path = directory / f"f{i:07d}.html"
        path.write_bytes(f"<p>file {i:07d}</p>\n".encode() * (1 + i % 60))
        os.utime(path, (BASE_MTIME, BASE_MTIME))
    return tree_stats(root)
