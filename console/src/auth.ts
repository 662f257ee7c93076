// TEMPORARY until AuthService lands: replaced by the generated client.
import type { Transport } from "./api.js";
import { Role } from "usher-client/gen/usher/v1/credential_pb";
interface Answer { accessToken: string; expireTime: undefined | { seconds: bigint; nanos: number }; agent: string; displayName: string; role: Role }
export function authClient(_transport: Transport, _token: () => string) {
  const no = async (_: object): Promise<Answer> => { throw new Error("AuthService is not there yet"); };
  return { signIn: no, refreshSession: no, signOut: no };
}
