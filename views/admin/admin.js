// What the operator's pages (/admin/imports, /admin/customers) share: the credentials form, errors
// as the page shows them, and GraphQL POST /graphql with `Authorization: Bearer <jwt>`. Loaded before
// each page's own script; no inline script or style (the pages' Content-Security-Policy).
'use strict';

(function () {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(message, field, code, status) {
      super(message);
      this.field = field || null;
      this.code = code || null;
      this.status = status || null;
    }
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
    let text = err.field ? `${err.field}: ${err.message}` : err.message;
    const tags = [err.status, err.code].filter(Boolean);
    if (tags.length) text += ` (${tags.join(' ')})`;
    return text;
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = false;
  }

  function hide(element) {
    element.textContent = '';
    element.hidden = true;
  }

  function claimedMerchant(token) {
    // Convenience only (the server verifies the token): prefill the merchant from its claim.
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')));
      return typeof claims.merchant_id === 'string' ? claims.merchant_id : null;
    } catch (_err) {
      return null;
    }
  }

  // The form's #token and #merchant; the merchant defaults to the one the token names.
  function credentials() {
    const token = $('token').value.trim();
    if (!token) throw new ApiError('is required', 'token');
    let merchant = $('merchant').value.trim();
    if (!merchant) {
      merchant = claimedMerchant(token) || '';
      $('merchant').value = merchant;
    }
    if (!merchant) throw new ApiError('is required (the token names no merchant)', 'merchant_id');
    if (!UUID.test(merchant)) throw new ApiError('must be a UUID', 'merchant_id');
    return { token, merchant };
  }

  async function graphql(token, query, variables) {
    let response;
    try {
      response = await fetch('/graphql', {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          Authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({ query, variables }),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (err) {
      throw new ApiError(`the service did not answer (${err.message})`, null, 'NETWORK');
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_err) {
      body = null;
    }
    if (body && Array.isArray(body.errors) && body.errors.length) {
      const first = body.errors[0];
      const ext = first.extensions || {};
      const status = response.ok ? null : response.status;
      throw new ApiError(first.message, ext.field || ext.flag, ext.code, status);
    }
    if (!response.ok || !body || !body.data) {
      const error = (body && body.error) || {};
      throw new ApiError(error.message || `HTTP ${response.status}`, error.field || error.flag, error.code,
        response.status);
    }
    return body.data;
  }

  window.LoyalNestAdmin = Object.freeze({
    UUID, $, ApiError, describe, show, hide, claimedMerchant, credentials, graphql,
  });
})();
