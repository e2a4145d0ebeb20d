// The /admin/customers page: search a merchant's customers (segment, exact email, tag), see the
// segment counts, and read a customer's timeline (what changed it, and why).
//
// It acts as the operator, with the JWT pasted into the page (kept in memory only), through GraphQL
// POST /graphql with `Authorization: Bearer <jwt>`: customers, segmentCounts, customerTimeline. The
// server checks the token's permissions and merchant on every call (docs/decisions.md D80, D175).
// Data is written into the page as text only (textContent), never as HTML. No inline script or
// style: the page is served with a strict Content-Security-Policy.
'use strict';

(function () {
  const PAGE = 25;
  const CUSTOMERS_QUERY =
    'query Customers($m: ID!, $first: Int, $after: String, $filter: CustomerFilter) {' +
    ' customers(merchant_id: $m, first: $first, after: $after, filter: $filter) {' +
    ' edges { node { id email segment rfm_score metadata(include: ["points"]) updated_at redacted } }' +
    ' pageInfo { hasNextPage endCursor } } }';
  const COUNTS_QUERY =
    'query Counts($m: ID!) { segmentCounts(merchant_id: $m) { total source segments { segment customers } } }';
  const TIMELINE_QUERY =
    'query Timeline($m: ID!, $c: ID!, $after: String) {' +
    ' customerTimeline(merchant_id: $m, customer_id: $c, first: 20, after: $after) {' +
    ' redacted retention_days entries { version kind reason occurred_at source }' +
    ' pageInfo { hasNextPage endCursor } } }';

  const { $, ApiError, describe, show, hide, credentials, graphql } = window.LoyalNestAdmin;
  const state = { token: '', merchant: '', filter: null, after: null, shown: 0, customer: null, older: null };

  function cell(row, text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  // ---- search --------------------------------------------------------------------------------

  function filterFromForm() {
    const filter = {};
    const segment = $('segment').value;
    const email = $('email').value.trim();
    const tag = $('tag').value.trim();
    if (segment) filter.segment = segment;
    if (email) filter.email = email;
    if (tag) filter.tag = tag;
    return filter;
  }

  function rfmText(score) {
    if (!score || score.recency === undefined) return '—';
    return `R ${score.recency} · F ${score.frequency} · M ${score.monetary}`;
  }

  function pointsText(metadata) {
    const points = metadata && metadata.points;
    return points && typeof points.balance === 'number' ? String(points.balance) : '—';
  }

  function addRows(edges) {
    const body = $('results-body');
    for (const { node } of edges) {
      const row = document.createElement('tr');
      row.dataset.customerId = node.id;
      row.dataset.segment = node.segment || '';
      cell(row, node.id);
      cell(row, node.redacted ? 'erased' : node.email || '—');
      const segment = cell(row, '');
      const badge = document.createElement('span');
      badge.className = 'segment';
      badge.textContent = node.segment || '—';
      segment.appendChild(badge);
      cell(row, rfmText(node.rfm_score));
      cell(row, pointsText(node.metadata), 'num');
      cell(row, node.updated_at || '—');
      const action = cell(row, '');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'link';
      button.textContent = 'Timeline';
      button.addEventListener('click', () => openTimeline(node.id));
      action.appendChild(button);
      body.appendChild(row);
    }
    state.shown += edges.length;
  }

  async function loadPage() {
    const data = await graphql(state.token, CUSTOMERS_QUERY, {
      m: state.merchant,
      first: PAGE,
      after: state.after,
      filter: state.filter,
    });
    const connection = data.customers;
    addRows(connection.edges);
    state.after = connection.pageInfo.hasNextPage ? connection.pageInfo.endCursor : null;
    $('more').hidden = !state.after;
    $('result-count').textContent = `${state.shown} shown${state.after ? ', more to load' : ''}`;
    $('results').hidden = false;
    $('results').dataset.loaded = String(state.shown);
  }

  async function loadCounts() {
    const data = await graphql(state.token, COUNTS_QUERY, { m: state.merchant });
    const counts = data.segmentCounts;
    const parts = counts.segments.map((s) => `${s.segment} ${s.customers}`);
    show($('counts'), `${counts.total} customers: ${parts.join(' · ')} (${counts.source} counts)`);
  }

  async function search(event) {
    event.preventDefault();
    hide($('search-error'));
    $('search').disabled = true;
    try {
      Object.assign(state, credentials());
      state.filter = filterFromForm();
      state.after = null;
      state.shown = 0;
      $('results-body').textContent = '';
      $('results').dataset.loaded = '';
      await Promise.all([loadPage(), loadCounts()]);
    } catch (err) {
      show($('search-error'), describe(err));
    } finally {
      $('search').disabled = false;
    }
  }

  async function more() {
    hide($('search-error'));
    try {
      await loadPage();
    } catch (err) {
      show($('search-error'), describe(err));
    }
  }

  // ---- timeline ------------------------------------------------------------------------------

  function sourceText(source) {
    if (!source) return '';
    if (source.topic) return `${source.topic} partition ${source.partition} offset ${source.offset}`;
    if (source.transport) return `${source.transport} by ${source.actor}`;
    if (source.import_id) return `import ${source.import_id}`;
    return source.tool || '';
  }

  function addEntries(entries) {
    const list = $('timeline-entries');
    for (const entry of entries) {
      const item = document.createElement('li');
      item.dataset.version = String(entry.version);
      item.dataset.kind = entry.kind;
      const version = document.createElement('span');
      version.className = 'version';
      version.textContent = `v${entry.version}`;
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = entry.kind;
      const reason = document.createElement('span');
      reason.className = 'reason';
      reason.textContent = entry.reason;
      const when = document.createElement('span');
      when.className = 'when';
      when.textContent = `${entry.occurred_at} · ${sourceText(entry.source)}`;
      item.append(version, kind, reason, when);
      list.appendChild(item);
    }
  }

  async function loadTimeline() {
    const data = await graphql(state.token, TIMELINE_QUERY, { m: state.merchant, c: state.customer, after: state.older });
    const page = data.customerTimeline;
    addEntries(page.entries);
    $('timeline-redacted').hidden = !page.redacted;
    state.older = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    $('older').hidden = !state.older;
    const count = $('timeline-entries').children.length;
    $('timeline-summary').textContent = page.redacted
      ? 'This customer was erased (GDPR): the timeline was purged.'
      : `${count} change(s), newest first; kept ${page.retention_days} days.`;
    $('timeline').dataset.loaded = String(count);
  }

  async function openTimeline(customerId) {
    hide($('timeline-error'));
    state.customer = customerId;
    state.older = null;
    $('timeline-customer').textContent = customerId;
    $('timeline-entries').textContent = '';
    $('timeline').dataset.loaded = '';
    $('timeline').dataset.customerId = customerId;
    $('timeline').hidden = false;
    for (const row of $('results-body').children) {
      row.classList.toggle('selected', row.dataset.customerId === customerId);
    }
    try {
      await loadTimeline();
    } catch (err) {
      show($('timeline-error'), describe(err));
    }
  }

  async function older() {
    try {
      await loadTimeline();
    } catch (err) {
      show($('timeline-error'), describe(err));
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('search-form').addEventListener('submit', search);
    $('more').addEventListener('click', more);
    $('older').addEventListener('click', older);
    document.body.dataset.ready = 'true';
  });
})();
