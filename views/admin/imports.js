// The /admin/imports page: start an import, follow it live, read its error rows, list past imports.
//
// It acts as the operator, with the JWT pasted into the page (kept in memory only):
//   - GraphQL POST /graphql with `Authorization: Bearer <jwt>`: importCustomers, getImportLogs;
//   - the WebSocket /core/v1/updates/stream?merchant_id=, authenticated by its first frame
//     {"type": "connection_init", "payload": {"token": "<jwt>"}}, for `import.progress` messages.
// The server checks the token's permissions and merchant on every call (docs/decisions.md D80).
// No inline script or style: the page is served with a strict Content-Security-Policy.
'use strict';

(function () {
  const LOG_FIELDS = 'import_id source status record_count error_log created_at';
  const START_MUTATION =
    'mutation StartImport($m: ID!, $s: String!, $u: String!) {' +
    ` importCustomers(merchant_id: $m, source: $s, file_url: $u) { ${LOG_FIELDS} } }`;
  const LOGS_QUERY = `query ImportLogs($m: ID!) { getImportLogs(merchant_id: $m) { ${LOG_FIELDS} } }`;
  const FINAL = new Set(['completed', 'failed']);
  const SUBSCRIBE_TIMEOUT_MS = 30000;
  const POLL_MS = 3000; // a fallback read of the log while no live message comes
  const FINAL_LOG_WAIT_MS = 60000; // for the log to show the end the live message announced
  const FIELD_INPUTS = { token: 'token', merchant_id: 'merchant', source: 'source', file_url: 'file-url' };
  const CLOSE_REASONS = {
    1001: 'the worker is shutting down',
    1006: 'the connection failed',
    4008: 'this page fell behind the live updates',
    4403: 'the token was refused or may not read this merchant',
    4408: 'the stream was not authenticated in time',
    4429: 'too many requests for this merchant',
    4503: 'the service cannot check credentials right now',
  };

  const { $, ApiError, describe, show, hide, claimedMerchant, credentials, graphql } = window.LoyalNestAdmin;

  // ---- the live stream ---------------------------------------------------------------------

  const live = { ws: null, key: null, ready: null };

  function setLive(state, text) {
    const element = $('live');
    element.dataset.state = state;
    element.textContent = text;
  }

  function closeMessage(event) {
    const known = CLOSE_REASONS[event.code] || 'the connection closed';
    const reason = event.reason && event.reason !== known ? `: ${event.reason}` : '';
    return `live updates refused or lost, ${known}${reason} (close ${event.code})`;
  }

  function closeStream() {
    if (live.ws) {
      const ws = live.ws;
      live.ws = null;
      live.key = null;
      live.ready = null;
      ws.close(1000, 'page closed the stream');
    }
  }

  // Resolves once the server said `subscribed`: from then on no progress message is missed.
  function openStream(token, merchant) {
    const key = `${merchant} ${token}`;
    if (live.ws && live.key === key && live.ready) return live.ready;
    closeStream();
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${window.location.host}/core/v1/updates/stream?merchant_id=${encodeURIComponent(merchant)}`;
    const ws = new WebSocket(url);
    live.ws = ws;
    live.key = key;
    live.ready = new Promise((resolve, reject) => {
      let subscribed = false;
      const timer = window.setTimeout(() => {
        if (!subscribed) {
          reject(new ApiError('live updates did not start in time', null, 'STREAM_TIMEOUT'));
          ws.close(1000, 'no subscription in time');
        }
      }, SUBSCRIBE_TIMEOUT_MS);
      ws.addEventListener('open', () => {
        ws.send(JSON.stringify({ type: 'connection_init', payload: { token } }));
      });
      ws.addEventListener('message', (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (_err) {
          return;
        }
        if (message.type === 'subscribed') {
          subscribed = true;
          window.clearTimeout(timer);
          setLive('connected', 'live updates connected');
          resolve();
        } else if (message.type === 'import.progress') {
          onProgress(message, true);
        }
      });
      ws.addEventListener('close', (event) => {
        window.clearTimeout(timer);
        const replaced = live.ws !== ws; // closed by the page, for another token or merchant
        if (!replaced) {
          live.ws = null;
          live.key = null;
          live.ready = null;
        }
        if (!subscribed) {
          reject(new ApiError(closeMessage(event), null, `CLOSE_${event.code}`));
        } else if (replaced) {
          // nothing to report: a newer stream (or none, on purpose) took its place
        } else if (current.id && !current.final) {
          setLive('lost', `${closeMessage(event)}; following the import log instead`);
        } else {
          setLive('idle', '');
        }
      });
    });
    return live.ready;
  }

  // ---- the import being followed -----------------------------------------------------------

  const current = {
    id: null,
    creds: null,
    starting: false,
    final: false,
    percent: 0,
    frames: 0,
    lastFrameAt: 0,
    poll: null,
  };
  const early = new Map(); // progress that arrived while the start mutation was in flight

  function begin(log, creds) {
    stopPolling();
    Object.assign(current, {
      id: log.import_id,
      creds,
      starting: false,
      final: false,
      percent: 0,
      frames: 0,
      lastFrameAt: Date.now(),
    });
    const section = $('current');
    section.dataset.importId = log.import_id;
    section.dataset.frames = '0';
    section.hidden = false;
    $('current-id').textContent = log.import_id;
    hide($('failure'));
    hide($('errors-summary'));
    $('errors').hidden = true;
    render({ status: log.status, processed: 0, succeeded: 0, failed: 0, total: null });
    current.poll = window.setInterval(pollLog, POLL_MS);
  }

  function stopPolling() {
    if (current.poll !== null) {
      window.clearInterval(current.poll);
      current.poll = null;
    }
  }

  function onProgress(message, viaStream) {
    if (current.starting) {
      early.set(message.import_id, message);
      return;
    }
    if (!current.id || message.import_id !== current.id || current.final) return;
    if (viaStream) {
      current.frames += 1;
      current.lastFrameAt = Date.now();
      $('current').dataset.frames = String(current.frames);
    }
    render(message);
    if (FINAL.has(message.status)) finish(message);
  }

  function percentOf(progress) {
    if (progress.status === 'completed') return 100;
    let fraction = 0;
    if (progress.total) fraction = progress.processed / progress.total;
    else if (progress.bytes_total) fraction = progress.bytes_read / progress.bytes_total;
    return Math.min(99, Math.floor(100 * fraction));
  }

  function number(value) {
    return typeof value === 'number' ? value.toLocaleString('en-US') : '0';
  }

  function render(progress) {
    const status = progress.status || 'pending';
    current.percent = Math.max(current.percent, percentOf(progress));
    const badge = $('status');
    badge.textContent = status;
    badge.dataset.status = status;
    const bar = $('bar');
    bar.dataset.status = status;
    bar.setAttribute('aria-valuenow', String(current.percent));
    $('bar-fill').style.width = `${current.percent}%`;
    $('percent').textContent = `${current.percent} %`;
    $('processed').textContent = number(progress.processed);
    $('succeeded').textContent = number(progress.succeeded);
    $('failed').textContent = number(progress.failed);
    $('total').textContent = typeof progress.total === 'number' ? number(progress.total) : 'unknown yet';
    if (progress.failure_reason) show($('failure'), `Import failed: ${progress.failure_reason}`);
  }

  function progressOf(log) {
    const errors = log.error_log || {};
    const failed = typeof errors.count === 'number' ? errors.count : 0;
    return {
      import_id: log.import_id,
      status: log.status,
      processed: log.record_count + failed,
      succeeded: log.record_count,
      failed,
      total: FINAL.has(log.status) ? log.record_count + failed : null,
      failure_reason: errors.failure_reason || null,
    };
  }

  async function pollLog() {
    // Only when the stream is quiet: the bar is fed by the WebSocket; this covers a lost stream.
    if (!current.id || current.final || Date.now() - current.lastFrameAt < POLL_MS) return;
    try {
      const logs = (await graphql(current.creds.token, LOGS_QUERY, { m: current.creds.merchant })).getImportLogs;
      const log = logs.find((item) => item.import_id === current.id);
      if (log && !current.final && Date.now() - current.lastFrameAt >= POLL_MS) {
        onProgress(progressOf(log), false);
      }
    } catch (err) {
      setLive('lost', `could not read the import log: ${describe(err)}`);
    }
  }

  async function finish(progress) {
    current.final = true;
    stopPolling();
    if (progress.status === 'failed') {
      show($('failure'), `Import failed: ${progress.failure_reason || 'no reason given'}`);
    }
    // The log is written to PostgreSQL a moment after the final message: read it until it says so.
    const importId = current.id;
    $('errors-title').textContent = `Error rows of import ${importId.slice(0, 8)}`;
    show($('errors-summary'), 'Reading the error rows...');
    $('errors-body').replaceChildren();
    $('errors-table').hidden = true;
    $('errors').dataset.importId = '';
    $('errors').hidden = false;
    const deadline = Date.now() + FINAL_LOG_WAIT_MS;
    for (;;) {
      const logs = await refreshHistory(current.creds);
      const log = logs && logs.find((item) => item.import_id === importId);
      if (current.id !== importId) return; // another import was started meanwhile
      if (log && FINAL.has(log.status)) {
        showErrors(log);
        return;
      }
      if (Date.now() > deadline) {
        if (log) showErrors(log);
        show($('errors-summary'), 'The import log has not caught up yet: press Refresh in a moment.');
        return;
      }
      await new Promise((resolve) => window.setTimeout(resolve, 1000));
    }
  }

  // ---- error rows and past imports ---------------------------------------------------------

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function showErrors(log) {
    const errors = log.error_log || {};
    const rows = Array.isArray(errors.errors) ? errors.errors : [];
    const count = typeof errors.count === 'number' ? errors.count : rows.length;
    $('errors-title').textContent = `Error rows of import ${log.import_id.slice(0, 8)}`;
    const section = $('errors');
    section.dataset.importId = log.import_id;
    let summary = count === 0 ? 'No row was refused.' : `${number(count)} row(s) refused`;
    if (count > rows.length) summary += `; the first ${number(rows.length)} are listed`;
    if (count > 0) summary += '. Row numbers are as a spreadsheet shows them (the header is row 1).';
    if (errors.failure_reason) summary += ` The import failed: ${errors.failure_reason}`;
    show($('errors-summary'), summary);
    const body = $('errors-body');
    body.replaceChildren();
    for (const entry of rows) {
      const tr = document.createElement('tr');
      cell(tr, String(entry.row), 'num');
      cell(tr, String(entry.error));
      body.appendChild(tr);
    }
    $('errors-table').hidden = rows.length === 0;
    section.hidden = false;
    for (const tr of $('history-body').children) {
      tr.classList.toggle('selected', tr.dataset.importId === log.import_id);
    }
  }

  function when(value) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value || '') : date.toLocaleString('en-GB');
  }

  function renderHistory(logs) {
    const body = $('history-body');
    body.replaceChildren();
    for (const log of logs) {
      const tr = document.createElement('tr');
      tr.dataset.importId = log.import_id;
      tr.dataset.status = log.status;
      cell(tr, when(log.created_at));
      const id = cell(tr, log.import_id.slice(0, 8));
      id.title = log.import_id;
      cell(tr, log.source);
      const status = cell(tr, '');
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.dataset.status = log.status;
      badge.textContent = log.status;
      status.appendChild(badge);
      cell(tr, number(log.record_count), 'num');
      const count = log.error_log && typeof log.error_log.count === 'number' ? log.error_log.count : 0;
      cell(tr, number(count), 'num');
      const actions = cell(tr, '');
      if (log.error_log) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'link';
        button.textContent = 'error rows';
        button.addEventListener('click', () => showErrors(log));
        actions.appendChild(button);
      }
      body.appendChild(tr);
    }
    $('history-table').hidden = logs.length === 0;
    const empty = $('history-empty');
    empty.textContent = 'No import yet for this merchant.';
    empty.hidden = logs.length !== 0;
  }

  async function refreshHistory(creds) {
    const errorBox = $('history-error');
    try {
      const logs = (await graphql(creds.token, LOGS_QUERY, { m: creds.merchant })).getImportLogs;
      hide(errorBox);
      renderHistory(logs);
      return logs;
    } catch (err) {
      show(errorBox, `Could not list imports: ${describe(err)}`);
      return null;
    }
  }

  // ---- the form ----------------------------------------------------------------------------

  function clearFormError() {
    hide($('form-error'));
    for (const id of Object.values(FIELD_INPUTS)) $(id).removeAttribute('aria-invalid');
  }

  function showFormError(err) {
    show($('form-error'), describe(err));
    const input = err instanceof ApiError && err.field ? FIELD_INPUTS[err.field] : null;
    if (input) {
      $(input).setAttribute('aria-invalid', 'true');
      $(input).focus();
    }
  }

  async function startImport(event) {
    event.preventDefault();
    clearFormError();
    let creds;
    try {
      creds = credentials();
    } catch (err) {
      showFormError(err);
      return;
    }
    const button = $('start');
    button.disabled = true;
    try {
      await openStream(creds.token, creds.merchant);
      early.clear();
      current.starting = true;
      let log;
      try {
        const data = await graphql(creds.token, START_MUTATION, {
          m: creds.merchant,
          s: $('source').value,
          u: $('file-url').value.trim(),
        });
        log = data.importCustomers;
      } finally {
        current.starting = false;
      }
      begin(log, creds);
      const pending = early.get(log.import_id);
      early.clear();
      if (pending) onProgress(pending, true);
      refreshHistory(creds);
    } catch (err) {
      showFormError(err);
    } finally {
      button.disabled = false;
    }
  }

  async function onRefresh() {
    let creds;
    try {
      creds = credentials();
    } catch (err) {
      show($('history-error'), describe(err));
      return;
    }
    await refreshHistory(creds);
  }

  function init() {
    $('start-form').addEventListener('submit', startImport);
    $('refresh').addEventListener('click', onRefresh);
    $('token').addEventListener('change', () => {
      const claimed = claimedMerchant($('token').value.trim());
      if (claimed && !$('merchant').value.trim()) $('merchant').value = claimed;
    });
    document.body.dataset.ready = 'true';
  }

  init();
})();
