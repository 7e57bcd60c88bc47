#include "tests/redis/redis_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace clink_gateway::testing {
namespace {

constexpr char kSocketName[] = "/redis.sock";
constexpr char kLogName[] = "/redis.log";
// sockaddr_un.sun_path holds 108 bytes; stay well inside it.
constexpr size_t kMaxSocketPath = 100;
constexpr int kMaxReplyDepth = 8;

std::string ErrnoText(absl::string_view what) {
  return absl::StrCat(what, ": ", strerror(errno));
}

// A fresh directory for the socket and log: under TEST_TMPDIR when the socket
// path stays short enough, else under /tmp.
absl::StatusOr<std::string> MakeDirectory() {
  std::string pattern;
  const char* test_tmpdir = getenv("TEST_TMPDIR");
  if (test_tmpdir != nullptr && *test_tmpdir != '\0') {
    pattern = absl::StrCat(test_tmpdir, "/redis-XXXXXX");
  }
  if (pattern.empty() ||
      pattern.size() + sizeof(kSocketName) > kMaxSocketPath) {
    pattern = "/tmp/cgw-redis-XXXXXX";
  }
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(ErrnoText(absl::StrCat("mkdtemp ", pattern)));
  }
  return pattern;
}

std::string ReadFileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string text = contents.str();
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return text;
}

// Reads RESP replies from a blocking socket.
class RespReader {
 public:
  explicit RespReader(int fd) : fd_(fd) {}

  absl::StatusOr<RespReply> Read(int depth = 0) {
    if (depth > kMaxReplyDepth) {
      return absl::DataLossError("RESP reply nested too deeply");
    }
    absl::StatusOr<std::string> line = Line();
    if (!line.ok()) return line.status();
    if (line->empty()) return absl::DataLossError("empty RESP line");
    const char kind = (*line)[0];
    const std::string rest = line->substr(1);
    RespReply reply;
    int64_t number = 0;
    switch (kind) {
      case '+':
        reply.type = RespReply::Type::kStatus;
        reply.text = rest;
        return reply;
      case '-':
        reply.type = RespReply::Type::kError;
        reply.text = rest;
        return reply;
      case ':':
        if (!absl::SimpleAtoi(rest, &number)) break;
        reply.type = RespReply::Type::kInteger;
        reply.integer = number;
        return reply;
      case '$': {
        if (!absl::SimpleAtoi(rest, &number)) break;
        if (number < 0) return reply;  // kNil
        absl::StatusOr<std::string> bytes = Bytes(number + 2);
        if (!bytes.ok()) return bytes.status();
        reply.type = RespReply::Type::kString;
        reply.text = bytes->substr(0, number);
        return reply;
      }
      case '*': {
        if (!absl::SimpleAtoi(rest, &number)) break;
        if (number < 0) return reply;  // kNil
        reply.type = RespReply::Type::kArray;
        for (int64_t i = 0; i < number; ++i) {
          absl::StatusOr<RespReply> element = Read(depth + 1);
          if (!element.ok()) return element.status();
          reply.elements.push_back(*std::move(element));
        }
        return reply;
      }
      default:
        break;
    }
    return absl::DataLossError(absl::StrCat("bad RESP line: ", *line));
  }

 private:
  absl::Status Fill() {
    char chunk[4096];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return absl::UnavailableError("redis closed the connection");
    if (n < 0) return absl::UnavailableError(ErrnoText("recv from redis"));
    buffer_.append(chunk, static_cast<size_t>(n));
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Line() {
    while (true) {
      const size_t end = buffer_.find("\r\n", pos_);
      if (end != std::string::npos) {
        std::string line = buffer_.substr(pos_, end - pos_);
        pos_ = end + 2;
        return line;
      }
      absl::Status filled = Fill();
      if (!filled.ok()) return filled;
    }
  }

  absl::StatusOr<std::string> Bytes(int64_t count) {
    while (buffer_.size() - pos_ < static_cast<size_t>(count)) {
      absl::Status filled = Fill();
      if (!filled.ok()) return filled;
    }
    std::string bytes = buffer_.substr(pos_, count);
    pos_ += count;
    return bytes;
  }

  const int fd_;
  std::string buffer_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Create() {
  return Create(Options());
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Create(
    Options options) {
  absl::StatusOr<std::string> dir = MakeDirectory();
  if (!dir.ok()) return dir.status();
  std::string socket_path = *dir + kSocketName;
  auto server = absl::WrapUnique(
      new RedisServer(std::move(options), *std::move(dir), socket_path));
  absl::Status started = server->Start();
  if (!started.ok()) return started;
  return server;
}

RedisServer::RedisServer(Options options, std::string dir,
                         std::string socket_path)
    : options_(std::move(options)),
      dir_(std::move(dir)),
      socket_path_(std::move(socket_path)) {}

RedisServer::~RedisServer() {
  Kill();
  unlink(socket_path_.c_str());
  unlink((dir_ + kLogName).c_str());
  rmdir(dir_.c_str());
}

absl::Status RedisServer::Start() {
  if (running()) return absl::FailedPreconditionError("redis is running");
  unlink(socket_path_.c_str());
  std::vector<std::string> args = {options_.binary,
                                   "--port",
                                   "0",
                                   "--unixsocket",
                                   socket_path_,
                                   "--unixsocketperm",
                                   "700",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--dir",
                                   dir_,
                                   "--logfile",
                                   dir_ + kLogName};
  args.insert(args.end(), options_.extra_args.begin(),
              options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(ErrnoText("fork"));
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. Die with the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, STDIN_FILENO);
      dup2(null_fd, STDOUT_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  absl::Status ready = WaitUntilReady();
  if (!ready.ok()) Kill();
  return ready;
}

absl::Status RedisServer::WaitUntilReady() {
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  absl::Status last = absl::UnavailableError("not started");
  while (absl::Now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat(options_.binary, " exited (status ", wstatus,
                       "); log:\n", ReadFileTail(dir_ + kLogName, 2000)));
    }
    absl::StatusOr<RespReply> pong = Command({"PING"});
    if (pong.ok() && pong->type == RespReply::Type::kStatus &&
        pong->text == "PONG") {
      return absl::OkStatus();
    }
    // With --requirepass, PING before AUTH answers NOAUTH: up all the same.
    if (pong.ok() && pong->type == RespReply::Type::kError) {
      return absl::OkStatus();
    }
    last =
        pong.ok() ? absl::UnknownError("unexpected PING reply") : pong.status();
    // Polling an external process's readiness: there is nothing to wait on.
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "redis did not answer PING on ", socket_path_, ": ", last.message(),
      "; log:\n", ReadFileTail(dir_ + kLogName, 2000)));
}

absl::Status RedisServer::Stop() {
  if (!running()) return absl::FailedPreconditionError("redis is not running");
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // In case it is paused.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  Kill();
  return absl::OkStatus();
}

absl::Status RedisServer::Pause() {
  if (!running()) return absl::FailedPreconditionError("redis is not running");
  if (kill(pid_, SIGSTOP) != 0) return absl::InternalError(ErrnoText("kill"));
  // Wait until it is really stopped, so the test's next step sees it hung.
  int wstatus = 0;
  if (waitpid(pid_, &wstatus, WUNTRACED) != pid_ || !WIFSTOPPED(wstatus)) {
    return absl::InternalError("redis did not stop");
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Resume() {
  if (!running()) return absl::FailedPreconditionError("redis is not running");
  if (kill(pid_, SIGCONT) != 0) return absl::InternalError(ErrnoText("kill"));
  return absl::OkStatus();
}

void RedisServer::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

absl::StatusOr<RespReply> RedisServer::Command(
    const std::vector<std::string>& args) const {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(ErrnoText("socket"));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("socket path too long");
  }
  memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(ErrnoText("connect to redis"));
  }
  std::string request = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& arg : args) {
    absl::StrAppend(&request, "$", arg.size(), "\r\n", arg, "\r\n");
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return absl::UnavailableError(ErrnoText("send to redis"));
    sent += static_cast<size_t>(n);
  }
  return RespReader(fd).Read();
}

}  // namespace clink_gateway::testing
