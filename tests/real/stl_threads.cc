// A C++ program that leans on the STL across threads, for goheap's
// real-program tests: producers build vectors, maps and strings and pass
// them as shared_ptr through a mutex-protected queue to consumers on other
// threads, which verify and fold them into order-independent checksums.
// The printed output is deterministic, so runs with and without goheap
// must print exactly the same thing.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct Msg {
    uint64_t id;
    std::vector<uint32_t> nums;
    std::map<std::string, std::string> kv;
    std::string text;
};

class Queue {
  public:
    void push(std::shared_ptr<Msg> m) {
        {
            std::lock_guard<std::mutex> g(mu_);
            q_.push_back(std::move(m));
        }
        cv_.notify_one();
    }
    std::shared_ptr<Msg> pop() {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return !q_.empty() || closed_; });
        if (q_.empty()) return nullptr;
        auto m = std::move(q_.front());
        q_.pop_front();
        return m;
    }
    void close() {
        {
            std::lock_guard<std::mutex> g(mu_);
            closed_ = true;
        }
        cv_.notify_all();
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Msg>> q_;
    bool closed_ = false;
};

static uint64_t mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    x ^= x >> 33;
    return x;
}

static std::shared_ptr<Msg> make_msg(uint64_t id) {
    auto m = std::make_shared<Msg>();
    m->id = id;
    uint64_t r = mix(id);
    size_t n = static_cast<size_t>(r % 2000) + (id % 97 == 0 ? 50000 : 0);
    m->nums.reserve(n / 3);
    for (size_t i = 0; i < n; i++) m->nums.push_back(static_cast<uint32_t>(mix(id * 131 + i)));
    for (int i = 0; i < static_cast<int>(r % 20); i++)
        m->kv["key" + std::to_string(i)] = std::string(static_cast<size_t>(mix(id + static_cast<uint64_t>(i)) % 300), static_cast<char>('a' + i));
    std::ostringstream os;
    for (size_t i = 0; i < n % 200; i++) os << m->nums[i] << ',';
    m->text = os.str();
    return m;
}

static uint64_t digest(const Msg &m) {
    uint64_t h = m.id;
    for (uint32_t v : m.nums) h = mix(h ^ v);
    for (auto &kv : m.kv) h = mix(h ^ std::hash<std::string>()(kv.first) ^ (kv.second.size() << 20));
    return mix(h ^ std::hash<std::string>()(m.text));
}

int main() {
    const int producers = 4, consumers = 4;
    const uint64_t per_producer = 6000;
    Queue q;
    std::atomic<uint64_t> sum{0}, xr{0}, count{0}, bad{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < consumers; c++)
        ts.emplace_back([&] {
            std::unordered_map<uint64_t, std::string> seen;
            std::list<std::shared_ptr<Msg>> hold; // keep some alive a while, free later in bulk
            while (auto m = q.pop()) {
                // recompute from scratch and compare: corruption shows as a mismatch
                auto fresh = make_msg(m->id);
                if (digest(*fresh) != digest(*m)) bad++;
                uint64_t d = digest(*m);
                sum += d;
                xr ^= d;
                count++;
                seen[m->id] = m->text.substr(0, 10);
                hold.push_back(std::move(m));
                if (hold.size() > 300) hold.erase(hold.begin(), std::next(hold.begin(), 200));
            }
        });
    std::vector<std::thread> ps;
    for (int p = 0; p < producers; p++)
        ps.emplace_back([&, p] {
            std::set<std::string> names;
            for (uint64_t i = 0; i < per_producer; i++) {
                auto m = make_msg(static_cast<uint64_t>(p) * per_producer + i);
                names.insert(m->text.substr(0, 8));
                q.push(m); // one reference stays here until the next iteration
            }
        });
    for (auto &t : ps) t.join();
    q.close();
    for (auto &t : ts) t.join();

    // single-threaded container work with a deterministic result
    std::map<std::string, std::vector<std::string>> index;
    for (int i = 0; i < 200000; i++) {
        std::string k = "w" + std::to_string(mix(static_cast<uint64_t>(i)) % 5000);
        index[k].push_back(std::to_string(i));
    }
    uint64_t idx_h = 0;
    for (auto &kv : index) idx_h = mix(idx_h ^ std::hash<std::string>()(kv.first) ^ kv.second.size());
    std::printf("messages %llu\nsum %016llx\nxor %016llx\nmismatches %llu\nindex %zu %016llx\n",
                static_cast<unsigned long long>(count.load()), static_cast<unsigned long long>(sum.load()),
                static_cast<unsigned long long>(xr.load()), static_cast<unsigned long long>(bad.load()),
                index.size(), static_cast<unsigned long long>(idx_h));
    return bad.load() == 0 && count.load() == producers * per_producer ? 0 : 1;
}
