/* Vela player page: the video list, a timeline of what is recorded, and playback.
 *
 * Playback: Media Source Extensions over the playback API's HLS VOD playlists.
 * Chromium and Firefox have no native HLS, so this script reads the playlist itself
 * (EXT-X-MAP init sections, segment URIs with EXT-X-BYTERANGE, EXTINF durations,
 * EXT-X-PROGRAM-DATE-TIME) and appends the fragmented-MP4 byte ranges to one SourceBuffer.
 * Chosen over the simpler `video.src = export.mp4?start=&end=` because:
 *  - the segments route puts each fragment's decode time (tfdt) on the wall clock, so one
 *    SourceBuffer with `timestampOffset = -base` places every fragment of every file at
 *    `wall - base` seconds: the mapping wall clock <-> video.currentTime is one subtraction,
 *    exact to the frame, across files and after any number of windows appended later;
 *  - windows are extended as playback proceeds (10 minutes per playlist, 30 s of media
 *    buffered ahead), so playback can run on across hours and follow a live video, where
 *    an export is one fixed window and is cut where the picture size changes;
 *  - pauses in recording are skipped (the buffered ranges have a hole there and the player
 *    jumps it), where an export holds the last picture for the length of the pause.
 * A segment file with other stream parameters (a camera changed resolution or profile)
 * brings its own init section, which is appended before its fragments (with
 * SourceBuffer.changeType when the codec string differs): MSE handles such a
 * configuration change within one SourceBuffer. If the browser has no MSE for H.264, the
 * page says so; the Download link still works.
 *
 * API calls send the page's `?access_token=` as an Authorization header; the download link
 * (which cannot carry headers) carries it as a query parameter (RFC 6750 §2.3).
 *
 * Boxes (a toggle, off by default, remembered in localStorage): the inference metadata
 * recorded with the video (GET api/videos/{name}/metadata) drawn on a canvas over the
 * picture. Entries are read for the playhead −10 s … +90 s (following `next`), again when
 * less than 30 s is left ahead, and every 2 s at a live edge (the last 5 s read again).
 * The wall-clock instant shown is the same `base + currentTime` as the timeline's playhead;
 * per source, the latest entry at or before it is drawn while it is at most 1.5 × that
 * source's median spacing old (1 s … 10 s). Boxes are normalised to the picture, which
 * `object-fit: contain` centres (letterboxed) in the video element: the picture's rect is
 * computed from videoWidth/videoHeight and the element's box. Each track (sequenceId) keeps
 * one colour (a hash of the id); labels read "person 93% #a1b2". Events have no box: the
 * last 2 s of them are captioned at the bottom ("LineCrossing1 clockwise").
 *
 * For tests and debugging, `window.vela` is a read-only view: wallTime() is the wall-clock
 * instant being shown (ISO 8601, or null), state() a snapshot of what the page holds,
 * timeToX()/xToTime() the timeline's scale (x in CSS pixels from the timeline's left edge).
 * state().overlay.drawn lists the boxes drawn last, in CSS pixels from the video element's
 * top-left corner, with their labels, colours, track ids and the entries' times.
 */
'use strict';

(() => {
  const SECOND = 1000;
  const MINUTE = 60 * SECOND;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;

  /** Timeline zoom limits (visible span). */
  const MIN_SPAN = 10 * SECOND;
  const MAX_SPAN = 62 * DAY;
  /** API limits (docs/playback.md): ranges over at most 366 days, media over at most 24 h. */
  const MAX_RANGES_WINDOW = 366 * DAY;
  const MAX_MEDIA_WINDOW = 24 * HOUR;
  /** A seek loads a playlist from this much before the target... */
  const BEHIND = MINUTE;
  /** ...to this much after it; later windows are loaded as playback gets there. */
  const AHEAD = 10 * MINUTE;
  /** Seconds of media kept appended ahead of the playhead, and kept behind it. */
  const BUFFER_AHEAD = 30;
  const KEEP_BEHIND = 120;
  /** Contiguous fragments of one file are fetched together, up to this many bytes. */
  const BATCH_BYTES = 4 << 20;

  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get('access_token') || '';
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const iso = (ms) => new Date(ms).toISOString();
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const query = (o) => Object.entries(o).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  const videoPath = (name) => `api/videos/${encodeURIComponent(name)}`;

  // ---------------------------------------------------------------- status and log

  const log = [];
  function status(message, level = 'info') {
    const el = $('status');
    el.textContent = message;
    el.className = level === 'error' ? 'error' : '';
    if (level !== 'info') {
      log.push(`${new Date().toISOString()} ${level}: ${message}`);
      if (log.length > 50) log.shift();
    }
  }

  // Uncaught errors (in drawing, in event handlers) are reported too, not only logged in
  // the console.
  window.addEventListener('error', (e) => status(`Page error: ${e.message}`, 'error'));
  window.addEventListener('unhandledrejection', (e) => status(`Page error: ${e.reason && e.reason.message ? e.reason.message : e.reason}`, 'error'));

  // ---------------------------------------------------------------- API

  /** GET an API path (relative to the page). Errors carry the API's code and status. */
  async function api(path, { as = 'json', range = null, signal } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (range) headers.Range = `bytes=${range[0]}-${range[1] - 1}`;
    const res = await fetch(path, { headers, signal });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      let code = '';
      try {
        const e = (await res.json()).error;
        message = `${e.code}: ${e.message}`;
        code = e.code;
      } catch (_) { /* not a JSON error */ }
      const err = new Error(message);
      err.status = res.status;
      err.code = code;
      throw err;
    }
    if (as === 'json') return res.json();
    if (as === 'text') return res.text();
    return res.arrayBuffer();
  }

  const parseRanges = (r) => r.ranges.map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) }));

  function rangesUrl(name, start, end) {
    return `${videoPath(name)}/ranges?${query({ start: iso(start), end: iso(end) })}`;
  }

  function exportHref(name, start, end) {
    let href = `${videoPath(name)}/export.mp4?${query({ start: iso(start), end: iso(end) })}`;
    if (token) href += `&${query({ access_token: token })}`;
    return href;
  }

  // ---------------------------------------------------------------- time formatting (local time)

  const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const hms = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const hm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const dayLabel = (d) => `${DAY_NAMES[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]}`;
  const dateLabel = (d) => `${dayLabel(d)} ${d.getFullYear()}`;
  const fullTime = (ms) => {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms(d)}.${pad(d.getMilliseconds(), 3)}`.slice(0, -2);
  };
  function duration(ms) {
    const s = Math.round(ms / SECOND);
    if (s < 120) return `${s} s`;
    if (s < 2 * 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 3 * 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} days ${Math.floor((s % 86400) / 3600)} h`;
  }
  /** Milliseconds to add to a UTC instant to get local wall time there. */
  const localOffset = (ms) => -new Date(ms).getTimezoneOffset() * MINUTE;

  // ---------------------------------------------------------------- HLS playlist parsing

  function attributes(s) {
    const out = {};
    for (const m of s.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)) out[m[1]] = m[2].replace(/^"|"$/g, '');
    return out;
  }

  /**
   * The media segments of an HLS media playlist: absolute URL, byte range, wall-clock start
   * (EXT-X-PROGRAM-DATE-TIME, else the previous one's end), duration, and init section.
   */
  function parsePlaylist(text, base) {
    const lines = text.split(/\r?\n/);
    if (lines[0].trim() !== '#EXTM3U') throw new Error('not an HLS playlist');
    const entries = [];
    let map = null;
    let pdt = null;
    let dur = 0;
    let byterange = null;
    let discontinuity = false;
    let ended = false;
    for (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      if (line.startsWith('#EXT-X-MAP:')) {
        const a = attributes(line.slice(11));
        const url = new URL(a.URI, base);
        const [len, off] = (a.BYTERANGE || '').split('@');
        map = { url: url.href, offset: Number(off || 0), length: len ? Number(len) : null };
        map.key = `${url.pathname}@${map.offset}`;
      } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
        pdt = Date.parse(line.slice(25));
      } else if (line.startsWith('#EXTINF:')) {
        dur = parseFloat(line.slice(8)) * SECOND;
      } else if (line.startsWith('#EXT-X-BYTERANGE:')) {
        byterange = line.slice(17);
      } else if (line === '#EXT-X-DISCONTINUITY') {
        discontinuity = true;
      } else if (line === '#EXT-X-ENDLIST') {
        ended = true;
      } else if (!line.startsWith('#')) {
        const url = new URL(line, base);
        const prev = entries[entries.length - 1];
        let offset = 0;
        let length = null;
        if (byterange) {
          const [len, off] = byterange.split('@');
          length = Number(len);
          offset = off !== undefined ? Number(off) : prev && prev.file === url.pathname ? prev.offset + prev.length : 0;
        }
        const start = pdt !== null ? pdt : prev ? prev.start + prev.duration : NaN;
        entries.push({ url: url.href, file: url.pathname, offset, length, start, duration: dur, map, discontinuity, key: `${url.pathname}@${offset}` });
        pdt = null;
        byterange = null;
        discontinuity = false;
        dur = 0;
      }
    }
    return { entries, ended };
  }

  /** RFC 6381 codec string from an init segment's avcC box (avc1.PPCCLL). */
  function codecOf(init) {
    const u = new Uint8Array(init);
    for (let i = 4; i + 8 < u.length; i++) {
      if (u[i] === 0x61 && u[i + 1] === 0x76 && u[i + 2] === 0x63 && u[i + 3] === 0x43) {
        const hex = (x) => x.toString(16).padStart(2, '0');
        return `avc1.${hex(u[i + 5])}${hex(u[i + 6])}${hex(u[i + 7])}`;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------- the player (MSE)

  const MediaSourceImpl = window.MediaSource || window.ManagedMediaSource;

  class Player {
    constructor(video) {
      this.video = video;
      /** The current playback session: one MediaSource for one video. */
      this.session = null;
      this.sessions = 0;
      this.lastRestart = 0;
      video.addEventListener('error', () => this.onError());
      video.disableRemotePlayback = true; // required by ManagedMediaSource (Safari)
    }

    /** Wall-clock ms being shown, or null when nothing is. */
    wall() {
      const s = this.session;
      const v = this.video;
      if (!s || !s.positioned || v.readyState < 1) return null;
      return (s.base + v.currentTime) * SECOND;
    }

    stop() {
      if (this.session) this.session.abort.abort();
      this.session = null;
      this.video.removeAttribute('src');
      this.video.load();
    }

    /** Shows `name` from wall-clock ms `t`: within what is buffered if possible, else anew. */
    seek(name, t, play = true) {
      const s = this.session;
      const v = this.video;
      if (s && s.name === name && s.positioned && !v.error) {
        const ct = t / SECOND - s.base;
        for (let i = 0; i < v.buffered.length; i++) {
          if (v.buffered.start(i) <= ct && ct < v.buffered.end(i) - 0.2) {
            s.target = t;
            v.currentTime = ct;
            if (play) v.play().catch(() => {});
            return;
          }
        }
      }
      this.start(name, t, play);
    }

    start(name, t, play) {
      this.stop();
      if (!MediaSourceImpl || !MediaSourceImpl.isTypeSupported('video/mp4; codecs="avc1.42e01e"')) {
        status('This browser cannot play H.264 through Media Source Extensions; use Download instead.', 'error');
        return;
      }
      const s = {
        id: ++this.sessions,
        name,
        target: t,
        play,
        base: 0,
        abort: new AbortController(),
        ms: null,
        sb: null,
        codec: null,
        queue: [],
        backlog: [],
        appended: new Map(),
        inits: new Map(),
        lastInit: null,
        lastEnd: 0,
        positioned: false,
        done: false,
        ended: false,
        initCount: 0,
        fragmentCount: 0,
      };
      this.session = s;
      this.run(s).catch((e) => {
        if (this.session === s && e.name !== 'AbortError') {
          status(`Playback stopped: ${e.message}`, 'error');
        }
      });
    }

    current(s) {
      if (this.session !== s) throw Object.assign(new Error('superseded'), { name: 'AbortError' });
    }

    async run(s) {
      const v = this.video;
      s.ms = new MediaSourceImpl();
      const url = URL.createObjectURL(s.ms);
      const opened = new Promise((resolve) => s.ms.addEventListener('sourceopen', resolve, { once: true }));
      v.src = url;
      await opened;
      URL.revokeObjectURL(url);
      this.current(s);
      status(`Loading ${s.name} at ${fullTime(s.target)}…`);
      await this.first(s);
      let failures = 0;
      while (this.session === s) {
        if (v.error) return;
        try {
          await this.step(s);
          if (failures) status('');
          failures = 0;
        } catch (e) {
          this.current(s);
          // A network or server hiccup: try again a few times before giving up.
          if (e.name === 'AbortError' || ++failures >= 5) throw e;
          status(`Retrying: ${e.message}`, 'error');
          await sleep(2 * SECOND);
        }
        this.current(s);
      }
    }

    /** One step of keeping media buffered ahead of the playhead. */
    async step(s) {
      const ahead = this.bufferedAhead();
      if (s.queue.length && (ahead < BUFFER_AHEAD || !s.positioned)) {
        await this.appendForward(s);
      } else if (!s.queue.length && !s.done && ahead < BUFFER_AHEAD) {
        await this.extend(s);
      } else if (s.backlog.length && ahead >= 10) {
        await this.appendBackward(s);
      } else {
        if (!s.queue.length && s.done && !s.ended) await this.endOfStream(s);
        await this.evict(s);
        await sleep(400);
      }
    }

    /** The first playlist: the window around the target, or where recording resumes after it. */
    async first(s) {
      let from = s.target - BEHIND;
      for (let attempt = 0; attempt < 3; attempt++) {
        const now = Date.now();
        const end = Math.min(s.target + AHEAD, now);
        if (from >= end) throw new Error(`nothing recorded after ${fullTime(s.target)}`);
        let entries = [];
        try {
          entries = (await this.playlist(s, from, end)).entries;
        } catch (e) {
          if (e.code !== 'NoRecording') throw e;
        }
        this.current(s);
        if (entries.some((e) => e.start + e.duration > s.target)) {
          // Everything from one second before the earliest fragment is at or after 0.
          s.base = Math.floor(entries[0].start / SECOND) - 1;
          const split = entries.findIndex((e) => e.start + e.duration > s.target);
          s.backlog = entries.slice(0, split);
          s.queue = entries.slice(split);
          for (const e of entries) this.known(s, e);
          return;
        }
        if (s.target >= now - SECOND) throw new Error(`nothing recorded after ${fullTime(s.target)}`);
        const next = parseRanges(await api(rangesUrl(s.name, s.target, now), { signal: s.abort.signal }));
        this.current(s);
        if (!next.length) throw new Error(`nothing recorded after ${fullTime(s.target)}`);
        s.target = Math.max(s.target, next[0].start);
        from = s.target;
      }
      throw new Error(`the playlists and ranges of ${s.name} disagree about ${fullTime(s.target)}`);
    }

    async playlist(s, start, end) {
      const path = `${videoPath(s.name)}/playlist.m3u8?${query({ start: iso(start), end: iso(end) })}`;
      const text = await api(path, { as: 'text', signal: s.abort.signal });
      return parsePlaylist(text, new URL(path, location.href).href);
    }

    /** Records an entry as known; returns it, a tail of it (a fragment that grew), or null. */
    known(s, e) {
      s.lastEnd = Math.max(s.lastEnd, e.start + e.duration);
      const had = s.appended.get(e.key);
      if (had === undefined) {
        s.appended.set(e.key, e.length);
        return e;
      }
      if (e.length !== null && had !== null && e.length > had) {
        s.appended.set(e.key, e.length);
        return { ...e, offset: e.offset + had, length: e.length - had, key: `${e.key}+${had}` };
      }
      return null;
    }

    /** Loads the playlist after what is known: the next window, or where recording resumes. */
    async extend(s) {
      const now = Date.now();
      const info = app.info(s.name);
      const live = !!(info && info.live);
      const from = s.lastEnd;
      if (from > now - SECOND) {
        await sleep(SECOND);
        return;
      }
      const end = Math.min(from + AHEAD, now);
      let fresh = [];
      try {
        fresh = (await this.playlist(s, from, end)).entries.map((e) => this.known(s, e)).filter(Boolean);
      } catch (e) {
        if (e.code !== 'NoRecording') throw e;
      }
      this.current(s);
      if (fresh.length) {
        s.queue.push(...fresh);
        return;
      }
      if (end >= now - SECOND) {
        if (live) await sleep(SECOND);
        else s.done = true;
        return;
      }
      // A pause longer than the window: continue where recording resumes.
      const start = end;
      const next = parseRanges(await api(rangesUrl(s.name, start, Math.min(now, start + MAX_RANGES_WINDOW)), { signal: s.abort.signal }));
      this.current(s);
      if (next.length) s.lastEnd = Math.max(end, next[0].start);
      else if (live) s.lastEnd = end;
      else s.done = true;
    }

    /** Contiguous entries of one file from the front of `list` (or its back), one request's worth. */
    static batch(list, backwards) {
      const take = [backwards ? list.pop() : list.shift()];
      let bytes = take[0].length || 0;
      while (list.length && bytes < BATCH_BYTES && take[0].length !== null) {
        const e = backwards ? list[list.length - 1] : list[0];
        const edge = backwards ? take[0] : take[take.length - 1];
        const contiguous = backwards
          ? e.file === edge.file && e.length !== null && e.offset + e.length === edge.offset
          : e.file === edge.file && e.length !== null && edge.offset + edge.length === e.offset;
        if (!contiguous || e.map.key !== edge.map.key) break;
        if (backwards) take.unshift(list.pop());
        else take.push(list.shift());
        bytes += e.length;
      }
      return take;
    }

    async appendForward(s) {
      const batch = Player.batch(s.queue, false);
      try {
        await this.appendBatch(s, batch);
      } catch (e) {
        s.queue.unshift(...batch);
        throw e;
      }
      if (!s.positioned) this.position(s, batch[0]);
    }

    async appendBackward(s) {
      const batch = Player.batch(s.backlog, true);
      try {
        await this.appendBatch(s, batch);
      } catch (e) {
        s.backlog.push(...batch);
        throw e;
      }
    }

    async appendBatch(s, batch) {
      const first = batch[0];
      const last = batch[batch.length - 1];
      const range = first.length === null ? null : [first.offset, last.offset + last.length];
      const data = await api(first.url, { as: 'bytes', range, signal: s.abort.signal });
      this.current(s);
      await this.ensureInit(s, first.map);
      await this.append(s, data);
      s.fragmentCount += batch.length;
    }

    /** Appends the init section of `map` unless it was the last one appended. */
    async ensureInit(s, map) {
      if (!map) throw new Error('the playlist has no EXT-X-MAP');
      if (s.lastInit === map.key) return;
      let init = s.inits.get(map.key);
      if (!init) {
        const range = map.length === null ? null : [map.offset, map.offset + map.length];
        init = await api(map.url, { as: 'bytes', range, signal: s.abort.signal });
        this.current(s);
        s.inits.set(map.key, init);
      }
      const codec = codecOf(init) || 'avc1.4d401f';
      const type = `video/mp4; codecs="${codec}"`;
      if (!s.sb) {
        if (!MediaSourceImpl.isTypeSupported(type)) throw new Error(`this browser cannot play ${codec}`);
        s.sb = s.ms.addSourceBuffer(type);
        s.sb.mode = 'segments';
        s.sb.timestampOffset = -s.base;
      } else if (codec !== s.codec && typeof s.sb.changeType === 'function') {
        s.sb.changeType(type);
      }
      s.codec = codec;
      await this.append(s, init);
      s.lastInit = map.key;
      s.initCount += 1;
    }

    append(s, data) {
      return new Promise((resolve, reject) => {
        const sb = s.sb;
        const done = () => {
          sb.removeEventListener('updateend', ok);
          sb.removeEventListener('error', bad);
        };
        const ok = () => {
          done();
          resolve();
        };
        const bad = () => {
          done();
          reject(new Error('the browser refused the media data'));
        };
        sb.addEventListener('updateend', ok);
        sb.addEventListener('error', bad);
        try {
          if (s.ms.readyState === 'ended') s.ended = false;
          sb.appendBuffer(data);
        } catch (e) {
          done();
          if (e.name === 'QuotaExceededError') {
            this.evict(s, 10).then(() => sleep(1000)).then(() => this.append(s, data)).then(resolve, reject);
          } else {
            reject(e);
          }
        }
      });
    }

    /** Moves the playhead to the target once its fragment is appended. */
    position(s, first) {
      const v = this.video;
      const at = Math.max(s.target, first.start);
      v.currentTime = at / SECOND - s.base;
      s.positioned = true;
      status('');
      if (s.play) v.play().catch((e) => status(`Press Play to start (${e.message})`));
    }

    /** Seconds of media buffered after the playhead (all ranges: pauses are jumped). */
    bufferedAhead() {
      const v = this.video;
      const t = v.currentTime;
      let ahead = 0;
      for (let i = 0; i < v.buffered.length; i++) ahead += Math.max(0, v.buffered.end(i) - Math.max(t, v.buffered.start(i)));
      return ahead;
    }

    /** Drops media long behind the playhead. */
    async evict(s, keep = KEEP_BEHIND) {
      const v = this.video;
      if (!s.sb || s.sb.updating || !v.buffered.length) return;
      const upTo = v.currentTime - keep;
      if (upTo <= v.buffered.start(0) + 1) return;
      await new Promise((resolve) => {
        s.sb.addEventListener('updateend', resolve, { once: true });
        try {
          s.sb.remove(0, upTo);
        } catch (_) {
          resolve();
        }
      });
    }

    async endOfStream(s) {
      if (s.ms.readyState === 'open' && s.sb && !s.sb.updating) {
        s.ms.endOfStream();
        s.ended = true;
      }
    }

    /** Called every 250 ms: jumps pauses in the recording (holes between buffered ranges). */
    tick() {
      const s = this.session;
      const v = this.video;
      if (!s || !s.positioned || v.paused || v.seeking || v.readyState >= 3) return;
      const t = v.currentTime;
      const b = v.buffered;
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) <= t && t < b.end(i) - 0.3) return; // just waiting for data
        if (b.start(i) > t) {
          v.currentTime = b.start(i) + 0.001;
          return;
        }
      }
    }

    onError() {
      const s = this.session;
      const err = this.video.error;
      if (!s || !err) return;
      const wall = this.wall();
      status(`Playback error: ${err.message || `code ${err.code}`}`, 'error');
      // One restart per 10 s: a fresh MediaSource from where it stopped.
      if (Date.now() - this.lastRestart > 10 * SECOND) {
        this.lastRestart = Date.now();
        this.start(s.name, wall !== null ? wall + SECOND : s.target, true);
      }
    }
  }

  // ---------------------------------------------------------------- the timeline

  const STEPS = [
    ...[1, 2, 5, 10, 15, 30].map((n) => n * SECOND),
    ...[1, 2, 5, 10, 15, 30].map((n) => n * MINUTE),
    ...[1, 2, 3, 6, 12].map((n) => n * HOUR),
    ...[1, 2, 7, 14, 28].map((n) => n * DAY),
  ];
  const COLORS = {
    bg: '#1b1e23',
    axis: '#8d95a3',
    tick: '#4a505c',
    gap: '#2a2e35',
    unknown: '#22252b',
    future: '#191b1f',
    recorded: '#3f9c5a',
    selection: 'rgba(74, 163, 255, 0.25)',
    handle: '#4aa3ff',
    playhead: '#ff5a5f',
  };
  const AXIS_H = 26;
  const BAR_Y = 34;
  const BAR_H = 30;

  /** Tick instants of `step` between start and end, aligned to local time. */
  function ticks(start, end, step) {
    const out = [];
    if (step >= DAY) {
      const days = step / DAY;
      const d = new Date(start);
      d.setHours(0, 0, 0, 0);
      while (d.getTime() <= end) {
        // Days since Monday 5 January 1970: weeks start on Mondays.
        const dayNumber = Math.round((d.getTime() + localOffset(d.getTime())) / DAY) - 4;
        if (d.getTime() >= start && ((dayNumber % days) + days) % days === 0) out.push(d.getTime());
        d.setDate(d.getDate() + 1);
      }
      return out;
    }
    const off = localOffset(start);
    for (let t = Math.floor((start + off) / step) * step - off; t <= end; t += step) {
      if (t >= start) out.push(t);
    }
    return out;
  }

  class Timeline {
    constructor(el, handlers) {
      this.el = el;
      this.canvas = el.querySelector('canvas');
      this.ctx = this.canvas.getContext('2d');
      this.handlers = handlers;
      const now = Date.now();
      this.view = { start: now - HOUR, end: now };
      this.name = null;
      this.ranges = [];
      /** The window the ranges were fetched for: {name, start, end, at}. */
      this.known = null;
      this.fetching = null;
      this.again = false;
      this.timer = 0;
      this.raf = 0;
      this.selection = null;
      this.drag = null;
      this.playhead = null;
      this.requests = 0;
      new ResizeObserver(() => this.redraw()).observe(this.canvas);
      this.listen();
    }

    get span() {
      return this.view.end - this.view.start;
    }

    get width() {
      return this.canvas.clientWidth || 1;
    }

    timeToX(t) {
      return ((t - this.view.start) / this.span) * this.width;
    }

    xToTime(x) {
      return this.view.start + (x / this.width) * this.span;
    }

    /** Shows another video (or none) over `start`..`end`. */
    reset(name, start, end) {
      this.name = name;
      this.ranges = [];
      this.known = null;
      this.selection = null;
      if (this.fetching) this.fetching.abort();
      this.handlers.select(null);
      this.setView(start, end);
    }

    setView(start, end) {
      // Whole milliseconds with the span kept exact: panning by fractional amounts must not
      // make the visible span drift by rounding (the state shows whole milliseconds).
      const span = Math.round(Math.min(MAX_SPAN, Math.max(MIN_SPAN, end - start)));
      start = Math.round((start + end) / 2 - span / 2);
      this.view = { start, end: start + span };
      this.redraw();
      this.scheduleRanges();
    }

    zoom(factor, at) {
      const span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, this.span * factor));
      const f = (at - this.view.start) / this.span;
      this.setView(at - f * span, at - f * span + span);
    }

    redraw() {
      if (!this.raf) {
        this.raf = requestAnimationFrame(() => {
          this.raf = 0;
          this.draw();
        });
      }
    }

    scheduleRanges(delay = 150) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.fetchRanges(), delay);
    }

    /** Asks for the ranges of the visible window (and a view's width either side) unless held. */
    async fetchRanges(force = false) {
      const name = this.name;
      if (!name) return;
      if (this.fetching) {
        this.again = true;
        return;
      }
      const now = Date.now();
      const k = this.known;
      // Held: the fetched window covers the view, and it is not a live video's present
      // older than 5 s (recording goes on there).
      const covered = k && k.name === name && k.start <= this.view.start && k.wanted >= this.view.end;
      const live = !!(app.info(name) || {}).live;
      const stale = k && live && k.end >= k.at - SECOND && this.view.end > k.end && now - k.at >= 5 * SECOND;
      if (!force && covered && !stale) return;
      const wanted = this.view.end + this.span;
      let start = this.view.start - this.span;
      const end = Math.min(wanted, now);
      if (end - start > MAX_RANGES_WINDOW) start = end - MAX_RANGES_WINDOW;
      if (start >= end) {
        this.ranges = [];
        this.known = { name, start, end: start, wanted, at: now };
        this.redraw();
        return;
      }
      const abort = new AbortController();
      this.fetching = abort;
      this.requests += 1;
      try {
        const ranges = parseRanges(await api(rangesUrl(name, start, end), { signal: abort.signal }));
        if (this.name === name) {
          this.ranges = ranges;
          this.known = { name, start, end, wanted, at: now };
          this.redraw();
        }
      } catch (e) {
        if (e.name !== 'AbortError') status(`Cannot read the recorded ranges: ${e.message}`, 'error');
      } finally {
        this.fetching = null;
        if (this.again) {
          this.again = false;
          this.scheduleRanges(0);
        }
      }
    }

    /** The recorded range holding `t`, or where to play when `t` is in a pause. */
    snap(t) {
      const r = this.ranges;
      if (!r.length || r.some((x) => x.start <= t && t < x.end)) return t;
      const next = r.find((x) => x.start > t);
      if (next) return next.start;
      const prev = r[r.length - 1];
      return Math.max(prev.start, prev.end - 10 * SECOND);
    }

    listen() {
      const c = this.canvas;
      const xOf = (e) => e.clientX - c.getBoundingClientRect().left;
      const nearEdge = (x) => {
        const sel = this.selection;
        if (!sel) return null;
        if (Math.abs(this.timeToX(sel.start) - x) <= 6) return 'start';
        if (Math.abs(this.timeToX(sel.end) - x) <= 6) return 'end';
        return null;
      };
      c.addEventListener('pointerdown', (e) => {
        if (e.button !== 0) return;
        const x = xOf(e);
        c.setPointerCapture(e.pointerId);
        this.el.focus({ preventScroll: true });
        const edge = nearEdge(x);
        if (edge) this.drag = { mode: 'edge', edge };
        else if (e.shiftKey) this.drag = { mode: 'select', anchor: this.xToTime(x) };
        else this.drag = { mode: 'pan', x0: x, start: this.view.start, end: this.view.end, moved: false };
        e.preventDefault();
      });
      c.addEventListener('pointermove', (e) => {
        const x = xOf(e);
        const d = this.drag;
        if (!d) {
          c.style.cursor = nearEdge(x) ? 'ew-resize' : 'pointer';
          return;
        }
        if (d.mode === 'pan') {
          if (Math.abs(x - d.x0) > 3) d.moved = true;
          if (d.moved) {
            const dt = ((x - d.x0) / this.width) * (d.end - d.start);
            this.setView(d.start - dt, d.end - dt);
          }
        } else if (d.mode === 'select') {
          const t = this.xToTime(x);
          this.setSelection(Math.min(d.anchor, t), Math.max(d.anchor, t));
        } else {
          const t = this.xToTime(x);
          const sel = this.selection;
          const other = d.edge === 'start' ? sel.end : sel.start;
          this.setSelection(Math.min(other, t), Math.max(other, t));
          if (t > other) d.edge = 'end';
          else if (t < other) d.edge = 'start';
        }
      });
      const end = (e) => {
        const d = this.drag;
        this.drag = null;
        if (!d || e.type === 'pointercancel') return;
        if (d.mode === 'pan' && !d.moved) this.handlers.seek(this.snap(this.xToTime(xOf(e))));
        if ((d.mode === 'select' || d.mode === 'edge') && this.selection && this.timeToX(this.selection.end) - this.timeToX(this.selection.start) < 2) {
          this.setSelection(null);
        }
      };
      c.addEventListener('pointerup', end);
      c.addEventListener('pointercancel', end);
      c.addEventListener(
        'wheel',
        (e) => {
          e.preventDefault();
          const unit = e.deltaMode === 1 ? 33 : e.deltaMode === 2 ? 500 : 1;
          if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
            const dt = ((e.deltaX * unit) / this.width) * this.span;
            this.setView(this.view.start + dt, this.view.end + dt);
          } else {
            this.zoom(Math.exp(e.deltaY * unit * 0.002), this.xToTime(xOf(e)));
          }
        },
        { passive: false },
      );
      this.el.addEventListener('keydown', (e) => {
        const step = this.span / 10;
        if (e.key === 'Escape') this.setSelection(null);
        else if (e.key === '+' || e.key === '=') this.zoom(0.5, this.focus());
        else if (e.key === '-') this.zoom(2, this.focus());
        else if (e.key === 'ArrowLeft') this.setView(this.view.start - step, this.view.end - step);
        else if (e.key === 'ArrowRight') this.setView(this.view.start + step, this.view.end + step);
        else return;
        e.preventDefault();
      });
    }

    /** Where button and key zooms centre: the playhead when visible, else the middle. */
    focus() {
      const p = this.playhead;
      return p !== null && p >= this.view.start && p <= this.view.end ? p : (this.view.start + this.view.end) / 2;
    }

    setSelection(start, end) {
      this.selection = start === null ? null : { start, end: Math.min(end, Date.now()) };
      this.handlers.select(this.selection);
      this.redraw();
    }

    /** Keeps a playing playhead in view: when it runs off the right edge, the view follows. */
    follow(t) {
      this.playhead = t;
      if (t !== null && !this.drag) {
        const x = this.timeToX(t);
        const w = this.width;
        if (x > 0.95 * w && x < 1.05 * w) this.setView(t - 0.25 * this.span, t + 0.75 * this.span);
      }
      this.redraw();
    }

    draw() {
      const c = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const w = c.clientWidth;
      const h = c.clientHeight;
      if (!w || !h) return;
      if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
        c.width = Math.round(w * dpr);
        c.height = Math.round(h * dpr);
      }
      const g = this.ctx;
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.fillStyle = COLORS.bg;
      g.fillRect(0, 0, w, h);
      const X = (t) => this.timeToX(t);
      const clip = (x) => Math.max(-2, Math.min(w + 2, x));

      // The bar: unknown (not fetched), gap, future, recorded.
      g.fillStyle = COLORS.unknown;
      g.fillRect(0, BAR_Y, w, BAR_H);
      const k = this.known;
      if (k && k.name === this.name) {
        g.fillStyle = COLORS.gap;
        const x0 = clip(X(k.start));
        g.fillRect(x0, BAR_Y, clip(X(k.end)) - x0, BAR_H);
      }
      const xNow = clip(X(Date.now()));
      if (xNow < w) {
        g.fillStyle = COLORS.future;
        g.fillRect(xNow, BAR_Y, w - xNow, BAR_H);
      }
      g.fillStyle = COLORS.recorded;
      for (const r of this.ranges) {
        if (r.end < this.view.start || r.start > this.view.end) continue;
        const x0 = clip(X(r.start));
        const x1 = clip(X(r.end));
        g.fillRect(x0, BAR_Y, Math.max(1, x1 - x0), BAR_H);
      }

      // The axis: minor and major ticks, labels in local time.
      const msPerPx = this.span / w;
      const major = STEPS.find((s) => s / msPerPx >= 90) || STEPS[STEPS.length - 1];
      const minor = [...STEPS].reverse().find((s) => s < major && major % s === 0 && s / msPerPx >= 8);
      g.fillStyle = COLORS.tick;
      if (minor) for (const t of ticks(this.view.start, this.view.end, minor)) g.fillRect(Math.round(X(t)), AXIS_H - 5, 1, 5);
      g.font = '11px system-ui, sans-serif';
      g.textBaseline = 'top';
      for (const t of ticks(this.view.start, this.view.end, major)) {
        const x = Math.round(X(t));
        const d = new Date(t);
        const midnight = d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0;
        let label;
        if (major >= DAY || (midnight && major >= MINUTE)) label = dayLabel(d);
        else if (major < MINUTE) label = hms(d);
        else label = hm(d);
        g.fillStyle = COLORS.tick;
        g.fillRect(x, AXIS_H - 10, 1, h - AXIS_H + 10);
        g.fillStyle = COLORS.axis;
        g.font = midnight ? 'bold 11px system-ui, sans-serif' : '11px system-ui, sans-serif';
        if (x + 3 + g.measureText(label).width <= w) g.fillText(label, x + 3, 4);
      }

      // The selection and its handles.
      const sel = this.selection;
      if (sel) {
        const x0 = clip(X(sel.start));
        const x1 = clip(X(sel.end));
        g.fillStyle = COLORS.selection;
        g.fillRect(x0, AXIS_H, Math.max(1, x1 - x0), h - AXIS_H);
        g.fillStyle = COLORS.handle;
        for (const x of [x0, x1]) g.fillRect(x - 2, AXIS_H, 4, h - AXIS_H);
      }

      // The playhead.
      if (this.playhead !== null) {
        const x = X(this.playhead);
        if (x >= -1 && x <= w + 1) {
          g.fillStyle = COLORS.playhead;
          g.fillRect(Math.round(x) - 1, AXIS_H - 4, 2, h - AXIS_H + 4);
        }
      }

      const a = new Date(this.view.start);
      const b = new Date(this.view.end);
      const sameDay = a.toDateString() === b.toDateString();
      const fmt = (d) => (this.span < 10 * MINUTE ? hms(d) : hm(d));
      $('view-range').textContent = sameDay
        ? `${dateLabel(a)}, ${fmt(a)} – ${fmt(b)} (${duration(this.span)})`
        : `${dateLabel(a)} ${fmt(a)} – ${dateLabel(b)} ${fmt(b)} (${duration(this.span)})`;
    }
  }

  // ---------------------------------------------------------------- the metadata overlay

  /** Metadata is fetched for the playhead −10 s … +90 s... */
  const META_BEHIND = 10 * SECOND;
  const META_AHEAD = 90 * SECOND;
  /** ...and extended once less than this is left ahead of the playhead. */
  const META_REFILL = 30 * SECOND;
  /** Pages (of at most 5000 entries) followed per fetch; the window then ends where they did. */
  const META_PAGES = 4;
  /** Cached entries kept behind the playhead while it moves on. */
  const META_KEEP_BEHIND = 30 * SECOND;
  /** At a live edge the last seconds are read again (metadata may be stored after its media), at most every 2 s. */
  const META_LIVE_OVERLAP = 5 * SECOND;
  const META_LIVE_EVERY = 2 * SECOND;
  /** An entry stays on screen for 1.5 × its source's median spacing, within these limits. */
  const HOLD_MIN = SECOND;
  const HOLD_MAX = 10 * SECOND;
  /** Events are captioned for this long after their time, newest first, at most 3 lines. */
  const EVENT_HOLD = 2 * SECOND;
  const EVENT_LINES = 3;
  /** An entry at most this much after the playhead counts as shown (float rounding of currentTime). */
  const EPSILON = 1;
  const BOXES_KEY = 'vela.boxes';

  /**
   * An RFC 3339 time as (fractional) milliseconds: Date.parse keeps milliseconds, the
   * digits after them are added back (to a fraction of a microsecond).
   */
  function parseTime(s) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(s);
    if (!m) return Date.parse(s);
    const frac = m[2] || '';
    return Date.parse(`${m[1]}${m[3]}`) + Number(`0.${frac || '0'}`) * SECOND;
  }

  /** A colour that stays the same for a key (a track id): the hue from an FNV-1a hash. */
  function colourOf(key) {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
    const hue = h % 360;
    const s = 0.85;
    const l = 0.58;
    const f = (n) => {
      const k = (n + hue / 30) % 12;
      const c = l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1));
      return Math.round(c * 255).toString(16).padStart(2, '0');
    };
    return `#${f(0)}${f(8)}${f(4)}`;
  }

  /** The box of an entity or motion inference (normalised to the picture), or null. */
  function boxOf(inf) {
    const b = (inf.entity && inf.entity.box) || (inf.motion && inf.motion.box) || null;
    if (!b || ![b.l, b.t, b.w, b.h].every(Number.isFinite) || b.w <= 0 || b.h <= 0) return null;
    return b;
  }

  /** "person 93% #a1b2": the tag, its confidence and the track id's first 4 characters. */
  function labelOf(inf) {
    if (inf.type === 'motion' || (inf.motion && !inf.entity)) return 'motion';
    const tag = (inf.entity && inf.entity.tag) || {};
    const parts = [String(tag.value || inf.subtype || inf.type || 'object')];
    if (Number.isFinite(tag.confidence)) parts.push(`${Math.round(tag.confidence * 100)}%`);
    if (inf.sequenceId) parts.push(`#${String(inf.sequenceId).slice(0, 4)}`);
    return parts.join(' ');
  }

  /** "LineCrossing1 clockwise": an event's name and its most telling properties. */
  function captionOf(inf) {
    const ev = inf.event;
    if (!ev || !ev.name) return null;
    const p = ev.properties || {};
    const more = ['direction', 'status', 'eventName', 'zone', 'personCount'].filter((k) => p[k] !== undefined && p[k] !== '').map((k) => String(p[k]));
    return [String(ev.name), ...more].join(' ');
  }

  /**
   * Boxes, labels and track ids of the inference metadata recorded with the video, on a
   * canvas over the video element. Entries are fetched around the playhead (see the
   * constants above) and kept sorted by time; per source, the latest entry at or before
   * the wall-clock instant shown is drawn while it is no older than that source's hold.
   */
  class Overlay {
    constructor(video, canvas, toggle) {
      this.video = video;
      this.canvas = canvas;
      this.ctx = canvas.getContext('2d');
      this.toggle = toggle;
      this.title = toggle.parentElement.title;
      this.on = false;
      /** The video the cache is for; its entries {t, time, source, inferences} by time. */
      this.name = null;
      this.entries = [];
      /** What the entries cover: {start, end, at} (at: when the end was read). */
      this.window = null;
      this.fetching = null;
      this.fetches = 0;
      this.failures = 0;
      this.retryAt = 0;
      this.error = null;
      this.holds = new Map();
      this.raf = 0;
      this.drawn = [];
      this.captions = [];
      this.content = null;
      let on = false;
      try {
        on = localStorage.getItem(BOXES_KEY) === 'on';
      } catch (_) { /* no storage: off */ }
      toggle.checked = on;
      toggle.addEventListener('change', () => this.setOn(toggle.checked));
      for (const type of ['play', 'playing', 'pause', 'seeked', 'resize', 'loadeddata', 'emptied']) video.addEventListener(type, () => this.redraw());
      new ResizeObserver(() => this.redraw()).observe(video);
      this.setOn(on);
    }

    setOn(on) {
      this.on = on;
      this.toggle.checked = on;
      try {
        localStorage.setItem(BOXES_KEY, on ? 'on' : 'off');
      } catch (_) { /* not remembered */ }
      if (!on && this.fetching) {
        this.fetching.abort.abort();
        this.fetching = null;
      }
      this.update();
      this.redraw();
    }

    reset(name) {
      if (this.fetching) this.fetching.abort.abort();
      Object.assign(this, { name, entries: [], window: null, fetching: null, failures: 0, retryAt: 0, error: null });
      this.holds.clear();
      this.showError();
    }

    /** Starts a fetch when the entries held do not cover the playhead well enough. */
    update() {
      if (app.name !== this.name) this.reset(app.name);
      const t = player.wall();
      if (!this.on || !this.name || t === null) return;
      const f = this.fetching;
      if (f) {
        if (t >= f.start && t <= f.end) return;
        f.abort.abort(); // a seek elsewhere
        this.fetching = null;
      }
      const now = Date.now();
      if (now < this.retryAt) return;
      const w = this.window;
      if (w && t >= w.start && t <= w.end) {
        if (w.end - t >= META_REFILL) return;
        const edge = w.end >= w.at - SECOND; // the window reached the present when read
        if (edge && now - w.at < META_LIVE_EVERY) return;
        const from = edge ? Math.max(w.start, w.end - META_LIVE_OVERLAP) : w.end;
        const end = Math.min(Math.max(t + META_AHEAD, w.end), now);
        if (end > from) this.fetch(from, end, false);
      } else {
        const start = t - META_BEHIND;
        const end = Math.min(t + META_AHEAD, now);
        if (end > start) this.fetch(start, end, true);
      }
    }

    /** Reads `start`..`end` (following `next`), replacing the cache or what it held from `start` on. */
    async fetch(start, end, replace) {
      const name = this.name;
      const job = { abort: new AbortController(), start: replace ? start : this.window.start, end };
      const at = Date.now();
      this.fetching = job;
      this.fetches += 1;
      try {
        const got = [];
        let from = iso(start);
        let covered = end;
        // `next` is the exact (nanosecond) time of the first entry left out, entry times are
        // to the millisecond: entries of other sources at the very instant of `next` can be
        // in both pages. They are told apart by time and source.
        let seen = new Set();
        for (let pages = 1; ; pages++) {
          const r = await api(`${videoPath(name)}/metadata?${query({ start: from, end: iso(end) })}`, { signal: job.abort.signal });
          if (this.fetching !== job) return;
          if (!r || !Array.isArray(r.entries)) throw new Error('metadata: not a list of entries');
          for (const e of r.entries) {
            const t = parseTime(e.time);
            const key = `${e.time}\n${e.source}`;
            if (!Number.isFinite(t) || seen.has(key)) continue;
            got.push({ t, key, time: e.time, source: String(e.source || ''), inferences: Array.isArray(e.inferences) ? e.inferences : [] });
          }
          const next = r.next ? parseTime(r.next) : null;
          if (next === null || !Number.isFinite(next) || next >= end) break;
          if (pages >= META_PAGES) {
            covered = Math.floor(next); // the next fetch reads the last millisecond again
            break;
          }
          const edge = Math.floor(next);
          seen = new Set(got.filter((e) => e.t >= edge).map((e) => e.key));
          from = r.next;
        }
        got.sort((a, b) => a.t - b.t);
        if (replace) {
          this.entries = got;
          this.window = { start, end: covered, at };
        } else {
          const t = player.wall();
          const keep = t === null ? start : Math.min(start, t - META_KEEP_BEHIND);
          this.entries = this.entries.filter((e) => e.t >= keep && e.t < start).concat(got);
          this.window = { start: Math.max(this.window.start, keep), end: covered, at };
        }
        this.holdTimes();
        this.error = null;
        this.failures = 0;
      } catch (e) {
        if (this.fetching !== job || e.name === 'AbortError') return;
        // Shown in state() and on the toggle; nothing drawn from a window that failed.
        this.error = e.message;
        this.failures += 1;
        this.retryAt = Date.now() + Math.min(30 * SECOND, SECOND * 2 ** this.failures);
        if (replace) {
          this.entries = [];
          this.window = null;
        }
      } finally {
        if (this.fetching === job) this.fetching = null;
        this.showError();
        this.redraw();
      }
    }

    showError() {
      const label = this.toggle.parentElement;
      label.classList.toggle('error', !!this.error);
      label.title = this.error ? `Cannot read the metadata: ${this.error}` : this.title;
    }

    /** Per source: 1.5 × the median spacing of its entries, within HOLD_MIN..HOLD_MAX. */
    holdTimes() {
      const last = new Map();
      const gaps = new Map();
      for (const e of this.entries) {
        const prev = last.get(e.source);
        if (prev !== undefined && e.t > prev) {
          if (!gaps.has(e.source)) gaps.set(e.source, []);
          gaps.get(e.source).push(e.t - prev);
        }
        last.set(e.source, e.t);
      }
      this.holds.clear();
      for (const [source, g] of gaps) {
        g.sort((a, b) => a - b);
        this.holds.set(source, Math.min(HOLD_MAX, Math.max(HOLD_MIN, 1.5 * g[g.length >> 1])));
      }
    }

    /** Index of the last entry at or before `t`, or -1. */
    lastAtOrBefore(t) {
      let lo = 0;
      let hi = this.entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.entries[mid].t <= t) lo = mid + 1;
        else hi = mid;
      }
      return lo - 1;
    }

    redraw() {
      if (!this.raf) this.raf = requestAnimationFrame(() => this.frame());
    }

    /** Draws; while the video plays, again on the next frame. */
    frame() {
      this.raf = 0;
      this.update();
      this.draw();
      if (this.on && !this.video.paused && !this.video.ended) this.redraw();
    }

    draw() {
      const v = this.video;
      const c = this.canvas;
      // The canvas covers the video element's box; the picture is letterboxed within it.
      const vr = v.getBoundingClientRect();
      const pr = c.offsetParent ? c.offsetParent.getBoundingClientRect() : vr;
      const w = vr.width;
      const h = vr.height;
      c.style.left = `${vr.left - pr.left}px`;
      c.style.top = `${vr.top - pr.top}px`;
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
      const dpr = window.devicePixelRatio || 1;
      const pw = Math.max(1, Math.round(w * dpr));
      const ph = Math.max(1, Math.round(h * dpr));
      if (c.width !== pw || c.height !== ph) {
        c.width = pw;
        c.height = ph;
      }
      const g = this.ctx;
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.clearRect(0, 0, c.width, c.height);
      this.drawn = [];
      this.captions = [];
      this.content = null;
      const t = player.wall();
      if (!this.on || t === null || this.name !== app.name || !v.videoWidth || !v.videoHeight || !w || !h) return;
      // object-fit: contain, centred.
      const scale = Math.min(w / v.videoWidth, h / v.videoHeight);
      const cw = v.videoWidth * scale;
      const ch = v.videoHeight * scale;
      const cx = (w - cw) / 2;
      const cy = (h - ch) / 2;
      this.content = { x: cx, y: cy, w: cw, h: ch };
      g.setTransform(c.width / w, 0, 0, c.height / h, 0, 0);

      // Per source the latest entry at or before t (within its hold); events of the last 2 s.
      const latest = new Map();
      const events = [];
      for (let i = this.lastAtOrBefore(t + EPSILON); i >= 0; i--) {
        const e = this.entries[i];
        const age = t - e.t;
        if (age > HOLD_MAX && age > EVENT_HOLD) break;
        if (!latest.has(e.source)) latest.set(e.source, e);
        if (age <= EVENT_HOLD) {
          for (const inf of e.inferences) {
            const text = inf && inf.type === 'event' ? captionOf(inf) : null;
            if (text && !events.includes(text) && events.length < EVENT_LINES) events.push(text);
          }
        }
      }
      g.lineWidth = 2;
      g.font = '12px system-ui, sans-serif';
      g.textBaseline = 'middle';
      for (const e of latest.values()) {
        if (t - e.t > (this.holds.get(e.source) || HOLD_MIN)) continue;
        for (const inf of e.inferences) {
          const b = inf && boxOf(inf);
          if (!b) continue;
          const x = cx + b.l * cw;
          const y = cy + b.t * ch;
          const bw = b.w * cw;
          const bh = b.h * ch;
          const track = inf.sequenceId ? String(inf.sequenceId) : null;
          const label = labelOf(inf);
          const colour = colourOf(track || `${inf.type}:${label.split(' ')[0]}`);
          g.strokeStyle = colour;
          g.strokeRect(x, y, bw, bh);
          const tw = g.measureText(label).width + 8;
          const ly = y - 16 >= 0 ? y - 16 : y; // above the box, or inside it at the top
          g.fillStyle = colour;
          g.fillRect(x - 1, ly, tw, 16);
          g.fillStyle = '#000';
          g.fillText(label, x + 3, ly + 8);
          this.drawn.push({ label, x, y, w: bw, h: bh, colour, track, source: e.source, time: e.time });
        }
      }
      if (events.length) {
        g.font = '13px system-ui, sans-serif';
        const lh = 18;
        let y = cy + ch - 6 - events.length * lh;
        for (const text of events) {
          const tw = g.measureText(text).width + 10;
          g.fillStyle = 'rgba(0, 0, 0, 0.65)';
          g.fillRect(cx + 6, y, tw, lh);
          g.fillStyle = '#fff';
          g.fillText(text, cx + 11, y + lh / 2);
          y += lh;
        }
      }
      this.captions = events;
    }

    state() {
      const w = this.window;
      return {
        on: this.on,
        video: this.name,
        window: w && { start: iso(w.start), end: iso(w.end) },
        entries: this.entries.length,
        fetches: this.fetches,
        fetching: !!this.fetching,
        error: this.error,
        holds: Object.fromEntries(this.holds),
        content: this.content,
        drawn: this.drawn.map((d) => ({ ...d })),
        captions: this.captions.slice(),
      };
    }
  }

  // ---------------------------------------------------------------- the page

  const video = $('video');
  const player = new Player(video);
  const items = new Map(); // video name -> its list entry

  const app = {
    videos: [],
    name: null,
    info(name) {
      return this.videos.find((v) => v.name === name) || null;
    },
  };

  const overlay = new Overlay(video, $('overlay'), $('boxes'));

  const timeline = new Timeline($('timeline'), {
    seek(t) {
      if (!app.name) return;
      player.seek(app.name, t, true);
    },
    select(sel) {
      const a = $('download');
      if (!sel || !app.name) {
        a.removeAttribute('href');
        a.setAttribute('aria-disabled', 'true');
        $('selection').textContent = '';
        return;
      }
      const len = sel.end - sel.start;
      $('selection').textContent = `${hms(new Date(sel.start))} – ${hms(new Date(sel.end))} (${duration(len)})`;
      if (len > MAX_MEDIA_WINDOW) {
        a.removeAttribute('href');
        a.setAttribute('aria-disabled', 'true');
        $('selection').textContent += ': downloads cover at most 24 h';
        return;
      }
      a.href = exportHref(app.name, sel.start, sel.end);
      a.setAttribute('aria-disabled', 'false');
    },
  });

  function spanText(v) {
    if (v.start === null || v.end === null) return 'nothing recorded';
    const a = new Date(v.start);
    const b = new Date(v.end);
    return `${dayLabel(a)} ${hm(a)} – ${a.toDateString() === b.toDateString() ? '' : `${dayLabel(b)} `}${hm(b)}`;
  }

  function renderVideos() {
    const ul = $('videos');
    const seen = new Set();
    for (const v of app.videos) {
      seen.add(v.name);
      let item = items.get(v.name);
      if (!item) {
        const li = document.createElement('li');
        const button = document.createElement('button');
        button.type = 'button';
        button.dataset.name = v.name;
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'LIVE';
        const title = document.createElement('span');
        title.className = 'title';
        const name = document.createElement('span');
        name.className = 'name';
        const span = document.createElement('span');
        span.className = 'span';
        button.append(badge, title, name, span);
        button.addEventListener('click', () => selectVideo(v.name));
        li.append(button);
        item = { li, button, badge, title, name, span };
        items.set(v.name, item);
      }
      ul.append(item.li); // keeps the API's order
      item.title.textContent = v.title || v.name;
      item.name.textContent = v.title && v.title !== v.name ? v.name : '';
      item.span.textContent = spanText(v);
      item.badge.hidden = !v.live;
      item.button.classList.toggle('live', v.live);
      item.button.classList.toggle('selected', v.name === app.name);
      item.button.title = v.description || '';
    }
    for (const [name, item] of items) {
      if (!seen.has(name)) {
        item.li.remove();
        items.delete(name);
      }
    }
    $('videos-empty').hidden = app.videos.length > 0;
    const info = app.info(app.name);
    $('live').disabled = !(info && info.live);
  }

  async function loadVideos() {
    try {
      const r = await api('api/videos');
      app.videos = r.videos.map((v) => ({ ...v, start: v.start && Date.parse(v.start), end: v.end && Date.parse(v.end) }));
      renderVideos();
      if ($('status').className === 'error' && /videos/.test($('status').textContent)) status('');
      if (!app.name && location.hash.length > 1) {
        const wanted = decodeURIComponent(location.hash.slice(1));
        if (app.info(wanted)) selectVideo(wanted);
      }
    } catch (e) {
      status(`Cannot list the videos: ${e.message}${e.status === 401 ? ' (open this page with ?access_token=…)' : ''}`, 'error');
    }
  }

  function selectVideo(name) {
    const info = app.info(name);
    if (!info) return;
    if (app.name !== name) player.stop();
    app.name = name;
    history.replaceState(null, '', `#${encodeURIComponent(name)}`);
    $('video-title').textContent = info.title || name;
    $('play').disabled = false;
    renderVideos();
    const now = Date.now();
    let start = info.start === null ? now - HOUR : info.start;
    let end = info.end === null ? now : info.live ? now : info.end;
    const margin = Math.max((end - start) * 0.05, 5 * SECOND);
    timeline.reset(name, start - margin, end + margin);
    status(info.start === null ? 'Nothing recorded yet.' : 'Click the timeline to play from there.');
  }

  async function goLive() {
    if (!app.name) return;
    await loadVideos();
    const info = app.info(app.name);
    if (!info || !info.live || info.end === null) {
      status('This video is not being recorded.', 'error');
      return;
    }
    const t = info.end - 3 * SECOND;
    const span = Math.min(timeline.span, 10 * MINUTE);
    timeline.setView(Date.now() - 0.8 * span, Date.now() + 0.2 * span);
    player.seek(app.name, t, true);
  }

  function togglePlay() {
    if (!app.name) return;
    if (!player.session) {
      const sel = timeline.selection;
      const first = timeline.ranges.find((r) => r.end > timeline.view.start);
      const t = sel ? sel.start : first ? Math.max(first.start, timeline.view.start) : timeline.view.start;
      player.seek(app.name, timeline.snap(t), true);
    } else if (video.paused) {
      video.play().catch((e) => status(e.message, 'error'));
    } else {
      video.pause();
    }
  }

  $('play').addEventListener('click', togglePlay);
  $('live').addEventListener('click', () => goLive());
  $('zoom-in').addEventListener('click', () => timeline.zoom(0.5, timeline.focus()));
  $('zoom-out').addEventListener('click', () => timeline.zoom(2, timeline.focus()));
  $('download').addEventListener('click', (e) => {
    if ($('download').getAttribute('aria-disabled') === 'true') e.preventDefault();
  });
  // Full screen: the video with its overlay.
  video.addEventListener('dblclick', () => (document.fullscreenElement ? document.exitFullscreen() : $('screen').requestFullscreen()).catch(() => {}));
  document.addEventListener('keydown', (e) => {
    if (e.key === ' ' && e.target === document.body) {
      e.preventDefault();
      togglePlay();
    }
  });

  // The playhead, the clock, pauses in recording and the live view: four times a second.
  setInterval(() => {
    player.tick();
    const wall = player.wall();
    timeline.follow(wall);
    overlay.update();
    if (video.paused) overlay.redraw();
    const info = app.info(app.name);
    const live = !!(info && info.live && wall !== null && Date.now() - wall < 30 * SECOND);
    $('clock').textContent = wall === null ? '' : `${fullTime(wall)}${live ? '  LIVE' : ''}`;
    $('clock').className = live ? 'live' : '';
    $('play').textContent = player.session && !video.paused ? 'Pause' : 'Play';
    if (info && info.live && timeline.view.end > Date.now() - MINUTE) {
      timeline.redraw();
      timeline.scheduleRanges(0);
    }
  }, 250);
  setInterval(loadVideos, 5 * SECOND);
  loadVideos();

  // ---------------------------------------------------------------- read-only test hook

  const bufferedWall = () => {
    const s = player.session;
    const out = [];
    if (!s) return out;
    for (let i = 0; i < video.buffered.length; i++) {
      out.push({ start: iso((s.base + video.buffered.start(i)) * SECOND), end: iso((s.base + video.buffered.end(i)) * SECOND) });
    }
    return out;
  };

  window.vela = Object.freeze({
    wallTime() {
      const w = player.wall();
      return w === null ? null : iso(w);
    },
    timeToX(t) {
      return timeline.timeToX(typeof t === 'number' ? t : Date.parse(t));
    },
    xToTime(x) {
      return iso(timeline.xToTime(x));
    },
    state() {
      const s = player.session;
      const sel = timeline.selection;
      const info = app.info(app.name);
      return {
        video: app.name,
        live: !!(info && info.live),
        videos: app.videos.map((v) => v.name),
        view: { start: iso(timeline.view.start), end: iso(timeline.view.end) },
        ranges: timeline.ranges.map((r) => ({ start: iso(r.start), end: iso(r.end) })),
        rangesWindow: timeline.known ? { start: iso(timeline.known.start), end: iso(timeline.known.end) } : null,
        rangeRequests: timeline.requests,
        selection: sel ? { start: iso(sel.start), end: iso(sel.end) } : null,
        download: $('download').getAttribute('href'),
        wallTime: window.vela.wallTime(),
        session: s && {
          id: s.id,
          target: iso(s.target),
          base: s.base,
          positioned: s.positioned,
          codec: s.codec,
          queued: s.queue.length,
          backlog: s.backlog.length,
          fragments: s.fragmentCount,
          inits: s.initCount,
          lastEnd: s.lastEnd ? iso(s.lastEnd) : null,
          done: s.done,
        },
        media: {
          currentTime: video.currentTime,
          readyState: video.readyState,
          paused: video.paused,
          ended: video.ended,
          seeking: video.seeking,
          width: video.videoWidth,
          height: video.videoHeight,
          error: video.error && (video.error.message || String(video.error.code)),
          buffered: bufferedWall(),
        },
        timeline: { width: timeline.width, height: timeline.canvas.clientHeight, barY: BAR_Y + BAR_H / 2 },
        overlay: overlay.state(),
        status: $('status').textContent,
        log: log.slice(),
      };
    },
  });
})();
