// The typed Callpilot client for browsers (and node): grpc-web through the
// Callpilot gateway, with a resumable watchCall and the unary calls.

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AssistService,
  type FeedbackKind,
  type GetCallResponse,
  type ListCallsResponse,
  type Suggestion,
  SuggestionFeedbackSchema,
  WrapUpSchema,
  type Disposition,
  type WrapUp,
} from "./gen/callpilot/v1/assist_service_pb.js";
import type { Call, CallConfigSchema, CallState } from "./gen/callpilot/v1/call_pb.js";
import { ToolDecisionSchema, type ToolCall, type ToolDecisionKind } from "./gen/callpilot/v1/events_pb.js";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Customer, KnowledgeHit, Order, Policy, PolicyType } from "./gen/callpilot/v1/directory_pb.js";
import { DirectoryService, type GetCustomerResponse } from "./gen/callpilot/v1/directory_service_pb.js";
import { bearerAuth } from "./auth.js";
import { CallpilotError } from "./errors.js";
import { CallWatch, type WatchCallOptions } from "./watch.js";

export interface CallpilotClientOptions {
  /**
   * The gateway's URL, e.g. "http://127.0.0.1:8080"; in a page served by the
   * gateway, `window.location.origin` (the default when there is a window).
   */
  baseUrl?: string;
  /** A ready transport instead of the grpc-web one (tests, connect-node). */
  transport?: Transport;
  /** fetch to use (e.g. to add credentials). */
  fetch?: typeof globalThis.fetch;
  /** Deadline for unary calls, in milliseconds (default 15000; 0 for none). */
  timeoutMs?: number;
  /** Metadata sent with every call, e.g. { authorization: "Bearer ..." }. */
  headers?: Record<string, string>;
  /** connect interceptors applied to every call. */
  interceptors?: Interceptor[];
  /**
   * The credential (API key or JWT) sent as `authorization: Bearer …` on every
   * call, read when each call starts; see `bearerAuth`.
   */
  credential?: () => string | undefined;
  /** Called when the server refuses a call as UNAUTHENTICATED (with `credential`). */
  onUnauthenticated?: (error: CallpilotError) => void;
}

/** Per-call options of the unary methods. */
export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

function defaultBaseUrl(): string {
  const location = (globalThis as { location?: { origin?: string } }).location;
  if (location?.origin !== undefined && location.origin !== "null") {
    return location.origin;
  }
  throw new Error("CallpilotClient needs a baseUrl outside a browser page, e.g. http://127.0.0.1:8080");
}

async function rpc<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (reason) {
    throw CallpilotError.from(reason);
  }
}

/** A connection to Callpilot through its gateway. Every error is a CallpilotError. */
export class CallpilotClient {
  /** The generated grpc-web clients, for anything the wrapper does not cover. */
  readonly assist: Client<typeof AssistService>;
  readonly directory: Client<typeof DirectoryService>;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: CallpilotClientOptions = {}) {
    const interceptors = [
      ...(options.credential !== undefined
        ? [
            bearerAuth({
              credential: options.credential,
              ...(options.onUnauthenticated !== undefined ? { onUnauthenticated: options.onUnauthenticated } : {}),
            }),
          ]
        : []),
      ...(options.interceptors ?? []),
    ];
    const transport =
      options.transport ??
      createGrpcWebTransport({
        baseUrl: options.baseUrl ?? defaultBaseUrl(),
        useBinaryFormat: true,
        ...(options.fetch !== undefined ? { fetch: options.fetch } : {}),
        ...(interceptors.length > 0 ? { interceptors } : {}),
      });
    this.assist = createClient(AssistService, transport);
    this.directory = createClient(DirectoryService, transport);
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.headers = { ...(options.headers ?? {}) };
  }

  private callOptions(options: RequestOptions | undefined): CallOptions {
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    return {
      headers: this.headers,
      ...(timeoutMs > 0 ? { timeoutMs } : {}),
      ...(options?.signal !== undefined ? { signal: options.signal } : {}),
    };
  }

  // ------------------------------------------------------------------ calls

  /**
   * Every event of a call from `fromSequence` (default 1): stored durable
   * events first, then live ones, until the call ends. A dropped stream is
   * re-opened from the last sequence seen plus one, so nothing is delivered
   * twice and no durable event is missed.
   */
  watchCall(callId: string, options: WatchCallOptions = {}): CallWatch {
    const headers = this.headers;
    return new CallWatch((request, callOptions) => this.assist.watchCall(request, { ...callOptions, headers }), callId, options);
  }

  /**
   * The call with its whole transcript: a long transcript comes in pages
   * (`transcriptNextPageToken`), which this reads with `ListTranscript` and joins.
   */
  async getCall(callId: string, options?: RequestOptions): Promise<GetCallResponse> {
    const response = await rpc(this.assist.getCall({ callId }, this.callOptions(options)));
    let token = response.transcriptNextPageToken;
    while (token) {
      const page = await rpc(this.assist.listTranscript({ callId, pageToken: token }, this.callOptions(options)));
      response.transcript.push(...page.segments);
      token = page.nextPageToken;
    }
    response.transcriptNextPageToken = "";
    return response;
  }

  async listCalls(
    request: { pageSize?: number; pageToken?: string; state?: CallState } = {},
    options?: RequestOptions,
  ): Promise<ListCallsResponse> {
    return rpc(this.assist.listCalls(request, this.callOptions(options)));
  }

  async createCall(config?: MessageInitShape<typeof CallConfigSchema>, options?: RequestOptions): Promise<Call> {
    const response = await rpc(this.assist.createCall(config === undefined ? {} : { config }, this.callOptions(options)));
    return response.call ?? missing("CreateCall", "call");
  }

  async endCall(callId: string, detail = "", options?: RequestOptions): Promise<Call> {
    const response = await rpc(this.assist.endCall({ callId, detail }, this.callOptions(options)));
    return response.call ?? missing("EndCall", "call");
  }

  /** Record what the agent did with a suggestion (used, dismissed, rated 1..5). */
  async submitFeedback(
    callId: string,
    feedback: { suggestionId: string; kind: FeedbackKind; rating?: number; comment?: string },
    options?: RequestOptions,
  ): Promise<Suggestion> {
    const response = await rpc(
      this.assist.submitFeedback(
        { callId, feedback: create(SuggestionFeedbackSchema, feedback) },
        this.callOptions(options),
      ),
    );
    return response.suggestion ?? missing("SubmitFeedback", "suggestion");
  }

  /**
   * Save the agent's wrap-up of a live or ended call (summary, disposition,
   * follow-ups, notes), replacing any saved before. Returns it as saved, with
   * `updateTime` and `updatedBy`; `getCall` returns it as `wrapUp`.
   */
  async saveWrapUp(
    callId: string,
    wrapUp: { summary?: string; disposition?: Disposition; followUps?: string[]; notes?: string },
    options?: RequestOptions,
  ): Promise<WrapUp> {
    const response = await rpc(
      this.assist.saveWrapUp({ callId, wrapUp: create(WrapUpSchema, wrapUp) }, this.callOptions(options)),
    );
    return response.wrapUp ?? missing("SaveWrapUp", "wrap_up");
  }

  /**
   * Decide a write tool the assistant proposed (status PENDING_CONFIRMATION):
   * confirm it, revise its arguments, or cancel it. Only while the call is live.
   */
  async decideTool(
    callId: string,
    decision: { toolCallId: string; kind: ToolDecisionKind; arguments?: JsonObject; comment?: string },
    options?: RequestOptions,
  ): Promise<ToolCall> {
    const response = await rpc(
      this.assist.submitFeedback(
        { callId, toolDecision: create(ToolDecisionSchema, decision) },
        this.callOptions(options),
      ),
    );
    return response.toolCall ?? missing("SubmitFeedback", "tool_call");
  }

  // -------------------------------------------------------------- directory

  async searchCustomers(query: string, pageSize = 10, options?: RequestOptions): Promise<Customer[]> {
    return (await rpc(this.directory.searchCustomers({ query, pageSize }, this.callOptions(options)))).customers;
  }

  async getCustomer(customerId: string, options?: RequestOptions): Promise<GetCustomerResponse> {
    return rpc(this.directory.getCustomer({ customerId }, this.callOptions(options)));
  }

  async getOrder(orderNumber: string, options?: RequestOptions): Promise<Order> {
    const response = await rpc(this.directory.getOrder({ orderNumber }, this.callOptions(options)));
    return response.order ?? missing("GetOrder", "order");
  }

  async getPolicy(type: PolicyType, options?: RequestOptions): Promise<Policy> {
    const response = await rpc(this.directory.getPolicy({ type }, this.callOptions(options)));
    return response.policy ?? missing("GetPolicy", "policy");
  }

  async searchKnowledge(query: string, pageSize = 5, options?: RequestOptions): Promise<KnowledgeHit[]> {
    return (await rpc(this.directory.searchKnowledge({ query, pageSize }, this.callOptions(options)))).hits;
  }
}

function missing(method: string, field: string): never {
  throw new CallpilotError(13, `${method} answered without ${field}`, { serverSent: true });
}
