// Spy Agency: live updates of the run board and its header over server-sent events, and a few keyboard
// shortcuts.
// Every text put into the page goes through textContent or an attribute, never parsed as HTML, so a
// string from a source is shown as text and runs nothing. The page works without this file, only not live.
'use strict';
(function () {
  var body = document.body;
  var table = document.getElementById('board');
  var status = document.getElementById('live');
  var clock = document.getElementById('clock');
  var now = Date.parse(body.dataset.now) || Date.now();
  var lastId = body.dataset.since || '';

  function hours(ms) {
    if (ms < 0) return '-' + hours(-ms);
    var h = ms / 3600000;
    if (h < 1) return Math.floor(ms / 60000) + 'm';
    if (h < 48) return h.toFixed(1) + 'h';
    return (h / 24).toFixed(1) + 'd';
  }
  function round(ms) { return Math.round(ms / 60000) * 60000; }
  function ago(iso) {
    if (!iso) return 'ongoing';
    return hours(round(now - Date.parse(iso))) + ' ago';
  }
  function until(iso) {
    if (!iso) return '\u2014';
    var d = round(Date.parse(iso) - now);
    return d < 0 ? 'passed ' + hours(-d) + ' ago' : 'in ' + hours(d);
  }
  // holdFor is the server's holdFor (header.go): "45 m", "14 h 20 m", "3 d 2 h".
  function holdFor(ms) {
    var m = Math.floor(Math.max(ms, 0) / 60000);
    if (m < 60) return m + ' m';
    if (m < 48 * 60) return Math.floor(m / 60) + ' h ' + (m % 60) + ' m';
    return Math.floor(m / 1440) + ' d ' + Math.floor((m % 1440) / 60) + ' h';
  }
  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function say(text) { setText(status, text); }

  function refreshTimes() {
    if (clock) {
      var iso = new Date(now).toISOString();
      setText(clock, iso.slice(0, 10) + ' ' + iso.slice(11, 16) + ' UTC');
    }
    document.querySelectorAll('#first-unready .fu-for').forEach(function (e) {
      setText(e, holdFor(now - Date.parse(e.dataset.since)));
    });
    if (!table) return;
    table.querySelectorAll('td.since').forEach(function (td) { setText(td, ago(td.dataset.stop)); });
    table.querySelectorAll('td.countdown').forEach(function (td) { setText(td, until(td.dataset.deadline)); });
  }

  // The filters of the page, to decide whether a run seen for the first time belongs on it.
  function globMatch(pattern, s) {
    if (!pattern) return true;
    var re = '^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$';
    return new RegExp(re).test(s);
  }
  function belongs(row) {
    var f = table.dataset;
    return globMatch(f.class, row.class) && (!f.readiness || f.readiness === row.readiness) && (!f.attention || row.attention);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // newRow builds the skeleton of a row in the table's column order; fill puts the data in.
  function newRow(row) {
    var tr = el('tr');
    tr.id = 'run-' + row.run;
    tr.dataset.run = String(row.run);
    var th = el('th');
    th.scope = 'row';
    var a = el('a', '', String(row.run));
    a.href = '/runs/' + encodeURIComponent(String(row.run));
    th.appendChild(a);
    tr.appendChild(th);
    tr.appendChild(el('td', 'class'));
    var rd = el('td', 'rd');
    var badge = el('span', 'badge');
    badge.appendChild(el('span', 'rsym'));
    badge.lastChild.setAttribute('aria-hidden', 'true');
    badge.appendChild(document.createTextNode(' '));
    badge.appendChild(el('span', 'rtext'));
    rd.appendChild(badge);
    tr.appendChild(rd);
    tr.appendChild(el('td', 'since'));
    tr.appendChild(el('td', 'countdown'));
    table.querySelectorAll('thead th.wf').forEach(function (h) {
      var td = el('td', 'cell st-none');
      td.dataset.wf = h.dataset.wf;
      td.hidden = h.hidden;
      var sym = el('span', 'sym'); sym.setAttribute('aria-hidden', 'true');
      var mark = el('span', 'mark'); mark.setAttribute('aria-hidden', 'true');
      td.appendChild(sym); td.appendChild(mark); td.appendChild(el('span', 'sr'));
      tr.appendChild(td);
    });
    tr.appendChild(el('td', 'reason'));
    return tr;
  }

  function showColumn(name) {
    table.querySelectorAll('[data-wf]').forEach(function (e) {
      if (e.dataset.wf === name) e.hidden = false;
    });
  }

  function fill(tr, row) {
    setText(tr.querySelector('td.class'), row.class);
    var badge = tr.querySelector('td.rd .badge');
    badge.className = 'badge rd-' + row.readiness;
    badge.title = row.readiness + ' v' + row.version + ': ' + row.reason;
    setText(badge.querySelector('.rsym'), row.readiness_symbol);
    setText(badge.querySelector('.rtext'), row.readiness);
    tr.querySelector('td.since').dataset.stop = row.stop || '';
    tr.querySelector('td.countdown').dataset.deadline = row.deadline || '';
    var reason = tr.querySelector('td.reason');
    setText(reason, row.reason);
    reason.title = row.reason;
    tr.classList.toggle('attention', !!row.attention);
    tr.classList.toggle('blocked', row.readiness === 'blocked');
    (row.workflows || []).forEach(function (c) {
      var td = null;
      tr.querySelectorAll('td[data-wf]').forEach(function (x) { if (x.dataset.wf === c.name) td = x; });
      if (!td) return; // a workflow outside the catalogue in use: not a column of this page
      td.className = c.class;
      td.title = c.title;
      setText(td.querySelector('.sym'), c.symbol);
      setText(td.querySelector('.mark'), c.mark);
      setText(td.querySelector('.sr'), c.label);
      if (c.state !== 'not-expected' && td.hidden) showColumn(c.name);
    });
  }

  function flash(tr) {
    tr.classList.remove('changed');
    void tr.offsetWidth; // restart the animation
    tr.classList.add('changed');
  }

  // The order of the board's rows: newest first, except that "needs attention" puts blocked runs first
  // (on its first page, where the server does the same).
  function group(tr) {
    return table.dataset.attention && !table.dataset.readiness && tr.classList.contains('blocked') ? 0 : 1;
  }
  function place(tr) {
    var tbody = table.tBodies[0];
    var g = group(tr), run = Number(tr.dataset.run), next = null;
    tbody.querySelectorAll('tr[data-run]').forEach(function (x) {
      if (next || x === tr) return;
      var gx = group(x);
      if (gx > g || (gx === g && Number(x.dataset.run) < run)) next = x;
    });
    if (tr.parentNode !== tbody || tr.nextSibling !== next) tbody.insertBefore(tr, next);
  }

  function onRun(ev) {
    if (ev.lastEventId) lastId = ev.lastEventId;
    var row;
    try { row = JSON.parse(ev.data); } catch (e) { return; }
    if (row.now) now = Date.parse(row.now) || now;
    if (table) {
      var tr = document.getElementById('run-' + row.run);
      if (tr) {
        var before = tr.querySelector('.rtext').textContent;
        var g = group(tr);
        fill(tr, row);
        if (group(tr) !== g && table.dataset.firstPage) place(tr);
        flash(tr);
        if (row.decision_changed && before !== row.readiness) say('Run ' + row.run + ' is now ' + row.readiness + '.');
      } else if (table.dataset.firstPage && belongs(row)) {
        var empty = table.querySelector('tbody tr.empty');
        if (empty) empty.remove();
        tr = newRow(row);
        fill(tr, row);
        place(tr);
        flash(tr);
        say('New run ' + row.run + ' (' + row.readiness + ').');
      }
    }
    refreshTimes();
  }

  // The header: each part is rebuilt from its state event, in the same structure the server renders.
  function part(id) { var card = document.getElementById(id); return card && card.querySelector('.part'); }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function link(href, text) { var a = el('a', '', text); a.href = href; return a; }
  function runLink(run, text) { return link('/runs/' + encodeURIComponent(String(run)), text); }
  function data(ev) { try { return JSON.parse(ev.data); } catch (e) { return null; } }

  function onHoldup(ev) {
    var v = data(ev), p = part('first-unready');
    if (!v || !p) return;
    // What an operator reads: flash the card when that changed, not when only the markup did.
    function said() {
      return Array.prototype.map.call(p.querySelectorAll('.big, .holdup, .bad'), function (e) { return e.textContent; }).join('|');
    }
    var before = said();
    clear(p);
    if (v.error) {
      p.appendChild(el('p', 'bad', v.error));
    } else if (!v.available) {
      p.appendChild(el('p', 'hint', 'not available on this server'));
    } else if (v.known) {
      var big = el('p', 'big');
      big.appendChild(runLink(v.run, String(v.run)));
      big.appendChild(document.createTextNode(' '));
      var badge = el('span', 'badge rd-' + v.readiness);
      var sym = el('span', '', v.readiness_symbol);
      sym.setAttribute('aria-hidden', 'true');
      badge.appendChild(sym);
      badge.appendChild(document.createTextNode(' ' + v.readiness));
      big.appendChild(badge);
      p.appendChild(big);
      var line = el('p', 'holdup', 'run ' + v.run + ' holds ');
      var plus = v.more ? '+' : '';
      line.appendChild(el('span', 'fu-held', v.held === 0 && !v.more ? 'no newer run' : v.held === 1 && !v.more ? '1 newer run' : v.held + plus + ' newer runs'));
      if (v.held_since) {
        line.appendChild(document.createTextNode(' for '));
        var f = el('span', 'fu-for', holdFor(now - Date.parse(v.held_since)));
        f.dataset.since = v.held_since;
        line.appendChild(f);
      }
      line.appendChild(document.createTextNode(': '));
      line.appendChild(el('span', 'fu-why', v.why));
      p.appendChild(line);
      p.appendChild(el('p', 'hint', 'Every run below it may be released. "For": since the first run it holds became releasable.'));
    } else {
      p.appendChild(el('p', 'big', String(v.run)));
      p.appendChild(el('p', 'holdup', 'No known run holds the queue: every run below ' + v.run + ' may be released.'));
    }
    if (said() !== before) flash(p.parentNode);
  }

  function onSources(ev) {
    var list = data(ev), p = part('sources-card');
    if (!p || !Array.isArray(list)) return;
    clear(p);
    var ul = el('ul', 'sources');
    ul.id = 'sources';
    list.forEach(function (c) {
      var li = el('li', c.class);
      li.title = c.title;
      var sym = el('span', '', c.symbol);
      sym.setAttribute('aria-hidden', 'true');
      li.appendChild(sym);
      li.appendChild(document.createTextNode(' ' + c.name + ' '));
      li.appendChild(el('span', 'sr', c.word));
      ul.appendChild(li);
    });
    p.appendChild(ul);
    var hint = el('p', 'hint');
    hint.appendChild(link('/sources', 'details'));
    p.appendChild(hint);
  }

  function alertKey(a) { return a.name + '|' + (a.run || '') + '|' + a.line; }
  function onAlerts(ev) {
    var v = data(ev), p = part('alerts');
    if (!v || !p) return;
    var open = {}; // the alerts an operator unfolded stay unfolded
    p.querySelectorAll('details[open]').forEach(function (d) { open[d.dataset.key] = true; });
    var old = p.querySelector('ul.alerts'), scrolled = old ? old.scrollTop : 0;
    var count = document.querySelector('#alerts .count');
    setText(count, v.configured ? String((v.alerts || []).length) : '');
    clear(p);
    if (!v.configured) {
      p.appendChild(el('p', 'hint', 'Alerts are not configured on this server.'));
    } else if (v.error) {
      p.appendChild(el('p', 'bad', 'alerts not available: ' + v.error));
    } else if (!v.alerts || !v.alerts.length) {
      p.appendChild(el('p', 'ok', 'none firing'));
    } else {
      var ul = el('ul', 'alerts');
      ul.tabIndex = 0;
      ul.setAttribute('aria-label', 'Firing alerts, one line each; open one for its details');
      v.alerts.forEach(function (a) {
        var li = el('li', 'sev-' + a.severity);
        var d = el('details');
        d.dataset.key = alertKey(a);
        d.open = !!open[d.dataset.key];
        var sum = el('summary');
        var sym = el('span', 'sev', a.symbol);
        sym.setAttribute('aria-hidden', 'true');
        sum.appendChild(sym);
        sum.appendChild(el('span', 'sr', a.severity + ': '));
        sum.appendChild(document.createTextNode(' ' + a.line));
        d.appendChild(sum);
        var more = el('p');
        more.appendChild(el('strong', '', a.name));
        if (a.details) more.appendChild(document.createTextNode(': ' + a.details));
        if (a.run) {
          more.appendChild(document.createTextNode(' \u00b7 '));
          more.appendChild(runLink(a.run, 'run ' + a.run));
        }
        d.appendChild(more);
        li.appendChild(d);
        ul.appendChild(li);
      });
      p.appendChild(ul);
      ul.scrollTop = scrolled;
    }
  }

  var source = null;
  function connect() {
    source = new EventSource('/events?since=' + encodeURIComponent(lastId));
    source.addEventListener('open', function () { say('Live updates: connected.'); });
    source.addEventListener('run', onRun);
    source.addEventListener('first-unready', onHoldup);
    source.addEventListener('sources', onSources);
    source.addEventListener('alerts', onAlerts);
    source.addEventListener('tick', function (ev) {
      try { now = Date.parse(JSON.parse(ev.data).now) || now; } catch (e) { return; }
      refreshTimes();
    });
    // The server could not give what was missed (it restarted, or too much happened): start afresh.
    source.addEventListener('resync', function () { window.location.reload(); });
    source.addEventListener('error', function () {
      if (source.readyState === EventSource.CLOSED) {
        say('Live updates: lost, retrying in 5 s.');
        source.close();
        setTimeout(connect, 5000);
      } else {
        say('Live updates: reconnecting…');
      }
    });
  }
  if (body.dataset.live && window.EventSource) connect();

  // Keyboard: "/" goes to the filters; "j" and "k" move between runs on the board.
  document.addEventListener('keydown', function (ev) {
    var t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)))) return;
    if (ev.key === '/') {
      var f = document.querySelector('form.filters input, form.filters select');
      if (f) { ev.preventDefault(); f.focus(); }
      return;
    }
    if ((ev.key === 'j' || ev.key === 'k') && table) {
      var links = Array.prototype.slice.call(table.querySelectorAll('tbody th a'));
      if (!links.length) return;
      var i = links.indexOf(document.activeElement);
      i = ev.key === 'j' ? Math.min(i + 1, links.length - 1) : Math.max(i - 1, 0);
      ev.preventDefault();
      links[i].focus();
    }
  });
})();
