// The one error class every failing call rejects with. `code` is one of the
// documented codes (see README); `respCode` and `serverText` carry what the
// server said, when it said something.
export class Pop3Error extends Error {
  constructor(message, { code, respCode = null, serverText = null } = {}) {
    super(message);
    this.name = 'Pop3Error';
    this.code = code;
    this.respCode = respCode;
    this.serverText = serverText;
  }
}
