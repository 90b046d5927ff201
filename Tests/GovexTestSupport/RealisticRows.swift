import GovexWire

/// Deterministic rows shaped like a department's resident and enterprise
/// registers: Chinese names and addresses, citizen ID numbers and unified social
/// credit codes with valid check digits, amounts and timestamps (~120 bytes of text).
public struct RealisticRows {
    private var random: SplitMix64

    public init(seed: UInt64 = 0x9E37_79B9) { random = SplitMix64(state: seed) }

    private mutating func next() -> UInt64 { random.next() }

    private mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

    static let surnames = Array("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤").map(String.init)
    static let givenNames = Array("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉兰建华海燕淑珍").map(String.init)
    static let cities = ["北京市海淀区", "上海市浦东新区", "广州市天河区", "深圳市南山区", "杭州市西湖区", "成都市武侯区", "武汉市洪山区", "南京市鼓楼区", "福州市鼓楼区", "西安市雁塔区"]
    static let streets = ["中关村大街", "人民路", "解放路", "建设路", "和平路", "长安街", "复兴路", "新华路", "文化路", "胜利路"]
    static let communities = ["幸福小区", "阳光花园", "翠苑社区", "锦绣家园", "东方明珠苑", "绿地新城"]

    /// A citizen ID number (GB 11643-1999) with a valid check character.
    public mutating func citizenID() -> String {
        let regions = ["110108", "310115", "440106", "440305", "330106", "510107", "420111", "320106", "350102", "610113"]
        let year = 1940 + Int(next() % 70), month = 1 + Int(next() % 12), day = 1 + Int(next() % 28)
        let sequence = Int(next() % 1000)
        var body = pick(regions) + String(year) + Self.twoDigits(month) + Self.twoDigits(day)
        body += String(repeating: "0", count: 3 - String(sequence).count) + String(sequence)
        return body + String(Self.citizenIDCheck(body))
    }

    /// The published columns of every record, key first.
    public static let columnNames = ["id_number", "name", "address", "employer_code", "amount", "birth_date", "updated_at", "status"]

    public static func citizenIDCheck(_ first17: String) -> Character {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(first17, weights).reduce(0) { $0 + Int(String($1.0))! * $1.1 }
        return Array("10X98765432")[sum % 11]
    }

    static let creditAlphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")

    /// A unified social credit code (GB 32100-2015) with a valid check character.
    public mutating func creditCode() -> String {
        var body = pick(["91", "92", "93", "12", "51", "52"]) + pick(["110108", "310115", "440106", "350102"])
        for _ in 0..<9 { body.append(Self.creditAlphabet[Int(next() % 31)]) }
        return body + String(Self.creditCodeCheck(body))
    }

    public static func creditCodeCheck(_ first17: String) -> Character {
        let weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
        let sum = zip(first17, weights).reduce(0) { $0 + creditAlphabet.firstIndex(of: $1.0)! * $1.1 }
        return creditAlphabet[(31 - sum % 31) % 31]
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }

    /// One insert record of the benchmark's resource.
    public mutating func record(ordinal: Int, commit: UInt64) -> ChangeRecord {
        let name = pick(Self.surnames) + pick(Self.givenNames) + (next() % 2 == 0 ? pick(Self.givenNames) : "")
        let address = pick(Self.cities) + pick(Self.streets) + String(1 + next() % 300) + "号" + pick(Self.communities) + String(1 + next() % 30) + "栋" + String(101 + next() % 2000) + "室"
        let cents = Int64(next() % 100_000_000)
        let amount = String(cents / 100) + "." + Self.twoDigits(Int(cents % 100))
        return ChangeRecord(
            operation: .insert, resource: "SC-QY-0001", position: SourcePosition(commit: commit, ordinal: UInt32(ordinal)),
            key: [Column("id_number", .text(citizenID()))],
            values: [
                Column("name", .text(name)),
                Column("address", .text(address)),
                Column("employer_code", .text(creditCode())),
                Column("amount", .numeric(try! Numeric(amount))),
                Column("birth_date", .date(Int32(next() % 20000) - 15000)),
                Column("updated_at", .timestamptz(Int64(next() % 800_000_000_000_000))),
                Column("status", .int2(Int16(next() % 4))),
            ])
    }
}
